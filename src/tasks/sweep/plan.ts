import { stampedVmId } from '../domain-join/computer-name.js';
import { fileTimeToMs } from '../domain-join/adcli.js';

/**
 * Pure rules of `dsvm-agent sweep`: which computer objects belong to this
 * pool, which VM of the pool sweeps, and which objects are stale.
 *
 * The pool's objects: in the pool's OU, named with the pool's prefix, AND
 * stamped `dsvm-agent vmId=<id>` in description by the agent that joined
 * them (computer-name.ts). An object without the stamp is never touched,
 * whatever its name: only the agent's own joins are the agent's to delete.
 */

export interface PoolComputer {
  dn: string;
  name: string;
  vmId: string;
  /** pwdLastSet as epoch ms; undefined when never set. */
  passwordSetAt: number | undefined;
}

/** What the directory says, per LDIF entry (lower-case attribute names). */
export interface DirectoryEntry {
  dn: string;
  attrs: Record<string, string[]>;
}

/** Pure: the pool's computers among the entries (prefix and stamp). */
export function poolComputers(entries: DirectoryEntry[], prefix: string): PoolComputer[] {
  const out: PoolComputer[] = [];
  for (const e of entries) {
    const name = (e.attrs.samaccountname?.[0] ?? '').replace(/\$$/, '').toUpperCase();
    const vmId = stampedVmId(e.attrs.description?.join(' '));
    if (!name.startsWith(prefix.toUpperCase()) || !vmId) continue;
    out.push({ dn: e.dn, name, vmId, passwordSetAt: fileTimeToMs(e.attrs.pwdlastset?.[0]) });
  }
  // Code-unit order (names are upper-cased ASCII): no ICU collation data in the daemon.
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** How existence was decided: ARM's VM list, or the machine password's age. */
export type Existence = { source: 'arm'; liveVmIds: string[] } | { source: 'password-age'; maxAgeMs: number; now: number };

export interface SweepPlan {
  source: Existence['source'];
  /** The vmId of the VM that sweeps: the lowest live one. */
  sweeper: string | undefined;
  stale: Array<PoolComputer & { reason: string }>;
  live: PoolComputer[];
}

const DAY_MS = 86_400_000;

/**
 * Pure: stale objects and the sweeper. With ARM, a stamped vmId that the
 * scale set no longer lists is a VM that no longer exists. Without ARM, a
 * machine password older than the limit is one no VM has renewed: sssd
 * renews it every 30 days (ad_maximum_machine_account_password_age), so a
 * live VM's is never much older.
 *
 * The sweeper is the live, joined VM of the pool with the lowest vmId (string order of the
 * lower-case GUID): every VM computes the same answer from the same list,
 * so one sweeps without any coordination service, and when it goes, the
 * next lowest takes over at its next run.
 */
export function planSweep(computers: PoolComputer[], existence: Existence): SweepPlan {
  const stale: SweepPlan['stale'] = [];
  const live: PoolComputer[] = [];

  if (existence.source === 'arm') {
    const known = new Set(existence.liveVmIds.map((v) => v.toLowerCase()));
    for (const c of computers) {
      if (known.has(c.vmId)) live.push(c);
      else stale.push({ ...c, reason: `VM ${c.vmId} is not in the scale set` });
    }
  } else {
    for (const c of computers) {
      const age = c.passwordSetAt === undefined ? Infinity : existence.now - c.passwordSetAt;
      if (age > existence.maxAgeMs)
        stale.push({
          ...c,
          reason:
            c.passwordSetAt === undefined
              ? 'machine password never set'
              : `machine password ${Math.floor(age / DAY_MS)} days old (limit ${Math.round(existence.maxAgeMs / DAY_MS)})`,
        });
      else live.push(c);
    }
  }
  // Among the live objects of the pool: a VM the scale set lists but that never joined runs no sweep.
  const sweeper = live.map((c) => c.vmId).sort()[0];
  return { source: existence.source, sweeper, stale, live };
}

/**
 * Pure: the name prefix of this pool when sweep.namePrefix is not set:
 * this VM's computer name up to and with its last "-" (scale-set names are
 * `<SCALESET>-<instance>`, computer-name.ts). A name without "-" has no
 * pool prefix to read.
 */
export function defaultPrefix(computerName: string | undefined): string | undefined {
  const i = computerName?.lastIndexOf('-') ?? -1;
  return computerName && i > 0 ? computerName.slice(0, i + 1).toUpperCase() : undefined;
}
