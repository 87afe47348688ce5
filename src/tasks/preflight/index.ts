import { Resolver } from 'node:dns/promises';
import net from 'node:net';
import { AgentError, permanent, transient } from '../../agent/errors.js';
import type { DomainControllerFact } from '../../agent/state.js';
import type { CheckResult, Task, TaskContext } from '../../agent/task.js';
import { readDcClockOffset } from './ldap-time.js';

/** Ports the join and later logins need on the DC: DNS, Kerberos, LDAP, SMB (GPO/SYSVOL, netlogon), kpasswd. */
export const DC_PORTS = [53, 88, 389, 445, 464] as const;

/** Kerberos refuses tickets beyond 5 minutes of skew (MIT/AD default clockskew). */
export const MAX_CLOCK_SKEW_MS = 5 * 60_000;
/** Above this, warn: still working, but drifting towards the limit. */
export const WARN_CLOCK_SKEW_MS = 60_000;

export interface SrvTarget {
  name: string;
  port: number;
  priority: number;
  weight: number;
}

/** The network doors preflight uses, injected so tests can replace them without globals. */
export interface PreflightDeps {
  resolveSrv(name: string): Promise<SrvTarget[]>;
  resolve4(name: string): Promise<string[]>;
  /** Resolves when the TCP port accepts a connection; rejects with the reason otherwise. */
  probePort(host: string, port: number, timeoutMs: number): Promise<void>;
  /** The DC clock minus ours, in ms. */
  clockOffset(host: string): Promise<number>;
}

export function systemPreflightDeps(): PreflightDeps {
  // A fresh resolver per run reads /etc/resolv.conf as it is now: at boot
  // the DHCP-provided DNS may have arrived after the agent started.
  // Three tries (c-ares lengthens each round: about 2, 4 and 8 s): a DC
  // busy with a burst of joins answers its own SRV records late, not never
  // (seen in the lab with five VMs joining at once); an unreachable DNS
  // still fails within about 14 s, and first boot retries with backoff.
  const resolver = (): Resolver => new Resolver({ timeout: 2000, tries: 3 });
  return {
    resolveSrv: (name) => resolver().resolveSrv(name),
    resolve4: (name) => resolver().resolve4(name),
    probePort: (host, port, timeoutMs) =>
      new Promise((resolve, reject) => {
        const s = net.connect({ host, port });
        const done = (err?: Error): void => {
          s.destroy();
          if (err) reject(err);
          else resolve();
        };
        s.setTimeout(timeoutMs, () => done(new Error(`timed out after ${timeoutMs} ms`)));
        s.once('connect', () => done());
        s.once('error', (err) => done(err));
      }),
    clockOffset: (host) => readDcClockOffset(host),
  };
}

const dnsCode = (err: unknown): string => String((err as NodeJS.ErrnoException)?.code ?? (err as Error)?.message ?? err);

/**
 * Classify a failed SRV lookup. NXDOMAIN means the DNS server the VM uses has
 * never heard of this domain (wrong name, or the VNet's DNS is not the DCs):
 * waiting does not fix it. SERVFAIL, timeouts and refused queries are what a
 * DNS server that is still starting (or a DC that is still booting) looks like.
 */
export function classifySrvError(record: string, domain: string, err: unknown): AgentError {
  const code = dnsCode(err);
  if (code === 'ENOTFOUND') {
    return permanent(`DNS: ${record} does not exist (NXDOMAIN): "${domain}" is not an AD domain this VM's DNS server knows`, {
      reason: 'dns-domain-unknown',
      fix: `check domain.name (the AD DNS domain, e.g. contoso.com, not the NetBIOS name) and that the VNet's DNS servers are the domain controllers`,
    });
  }
  if (code === 'ENODATA') {
    return permanent(`DNS: ${domain} exists but has no ${record} record`, {
      reason: 'dns-srv-missing',
      fix: `point the VNet's DNS servers at the domain controllers (a public or Azure DNS zone of the same name has no AD SRV records)`,
    });
  }
  return transient(`DNS: looking up ${record} failed (${code}): the DNS server is not answering yet`, {
    reason: 'dns-not-ready',
    fix: 'check that the VNet DNS servers (the domain controllers) are up and reachable on port 53',
  });
}

/**
 * Order SRV targets by priority, then higher weight first (RFC 2782 without
 * randomness: the result is stable), then by name in code-unit order: host
 * names are ASCII, and localeCompare would map ICU's collation data into the
 * daemon (~3 MB resident for the life of the process) for no better order.
 */
export function orderSrv(records: readonly SrvTarget[]): SrvTarget[] {
  return [...records].sort((a, b) => a.priority - b.priority || b.weight - a.weight || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Classify the clock offset: over 5 minutes breaks Kerberos (permanent), over 1 minute is a warning. */
export function classifyClockOffset(dc: string, offsetMs: number): { error?: AgentError; warning?: string } {
  const abs = Math.abs(offsetMs);
  const text = `${(offsetMs / 1000).toFixed(1)} s (${offsetMs > 0 ? 'the DC is ahead' : 'this VM is ahead'})`;
  if (abs > MAX_CLOCK_SKEW_MS) {
    return {
      error: permanent(`clock: this VM's clock differs from the DC ${dc} by ${text}; Kerberos allows at most 5 minutes`, {
        reason: 'clock-skew',
        fix: 'enable time sync (chrony with the Hyper-V PTP clock /dev/ptp_hyperv on Azure, or the DC as NTP server), then `chronyc makestep`',
      }),
    };
  }
  if (abs > WARN_CLOCK_SKEW_MS)
    return { warning: `clock: this VM's clock differs from the DC ${dc} by ${text}; Kerberos fails above 5 minutes: check time sync` };
  return {};
}

/** What preflight learns of the DC it found (the fact it records adds when). */
export type DcFacts = Omit<DomainControllerFact, 'foundAt'>;

/** Find the first DC (in SRV order) that answers on every required port; throws the classified failure otherwise. */
async function findReachableDc(targets: SrvTarget[], deps: PreflightDeps, timeoutMs: number): Promise<{ host: string; address: string }> {
  const problems: string[] = [];
  for (const t of targets) {
    let address: string;
    try {
      const found = await deps.resolve4(t.name);
      if (!found[0]) throw Object.assign(new Error('no address'), { code: 'ENODATA' });
      address = found[0];
    } catch (err) {
      problems.push(`${t.name}: no IPv4 address (${dnsCode(err)})`);
      continue;
    }
    const results = await Promise.allSettled(DC_PORTS.map((p) => deps.probePort(address, p, timeoutMs)));
    const closed = results.flatMap((r, i) =>
      r.status === 'rejected' ? [`${DC_PORTS[i]} (${(r.reason as Error)?.message ?? r.reason})`] : [],
    );
    if (closed.length === 0) return { host: t.name, address };
    problems.push(`${t.name} (${address}): port${closed.length > 1 ? 's' : ''} ${closed.join(', ')} not reachable`);
  }
  throw transient(`no domain controller is reachable on every required port: ${problems.join('; ')}`, {
    reason: 'dc-unreachable',
    fix: `allow TCP ${DC_PORTS.join(', ')} (and UDP 53, 88, 464) from this subnet to the DCs in the NSG/firewall, and check that the DCs are running`,
  });
}

/** Run every prerequisite check; returns the DC found and warnings, or throws the first classified failure. */
export async function runPreflight(
  ctx: TaskContext,
  deps: PreflightDeps,
  opts: { portTimeoutMs?: number } = {},
): Promise<{ dc: DcFacts; warnings: string[] }> {
  const domain = ctx.cfg.domain.name.toLowerCase();
  const log = ctx.log.child('preflight');
  const warnings: string[] = [];

  // The secret first: it needs no network, and a missing one is a config
  // problem worth reporting even while the DC is still down.
  const secretRef = ctx.cfg.domain.oneTimePassword ?? ctx.cfg.domain.joinPassword;
  const secretKey = ctx.cfg.domain.oneTimePassword ? 'domain.oneTimePassword' : 'domain.joinPassword';
  if (secretRef) await ctx.secret(secretRef, secretKey);

  const srv: Record<string, SrvTarget[]> = {};
  for (const record of [`_ldap._tcp.${domain}`, `_kerberos._tcp.${domain}`]) {
    try {
      srv[record] = orderSrv(await deps.resolveSrv(record));
    } catch (err) {
      throw classifySrvError(record, domain, err);
    }
    if (srv[record]!.length === 0) throw classifySrvError(record, domain, Object.assign(new Error('empty'), { code: 'ENODATA' }));
  }
  const ldapTargets = srv[`_ldap._tcp.${domain}`]!;
  log.debug(`SRV _ldap._tcp.${domain}: ${ldapTargets.map((t) => t.name).join(', ')}`);

  const { host, address } = await findReachableDc(ldapTargets, deps, opts.portTimeoutMs ?? 3000);

  let offset: number;
  try {
    offset = await deps.clockOffset(address);
  } catch (err) {
    throw transient(`clock: cannot read the time of the DC ${host} (${address}) from its LDAP rootDSE: ${(err as Error).message}`, {
      reason: 'clock-unavailable',
      fix: 'check that anonymous LDAP rootDSE reads on port 389 are allowed (they are by default on AD)',
    });
  }
  const clock = classifyClockOffset(host, offset);
  if (clock.error) throw clock.error;
  if (clock.warning) warnings.push(clock.warning);
  return { dc: { host, address, clockOffsetMs: Math.round(offset) }, warnings };
}

/**
 * The DC preflight found answering on every port, passed to the join in the
 * state's facts (`domainController`, with when it was found). The join talks
 * to that one DC from its name check to the join itself (see
 * domain-join/kdc-probe.ts); a DC found longer ago than `maxAgeMs` (a
 * daemon's repair months after first boot) is not assumed to be there
 * still, and then adcli discovers one as usual.
 */
export function recentDomainController(ctx: TaskContext, maxAgeMs = 10 * 60_000): string | undefined {
  const dc = ctx.state.facts.domainController;
  const foundAt = dc?.foundAt === undefined ? NaN : Date.parse(dc.foundAt);
  return dc && ctx.clock.now() - foundAt <= maxAgeMs ? dc.host : undefined;
}

/**
 * Build the preflight task. It changes nothing: `check` throws the classified
 * error when a prerequisite fails (the engine retries transient ones with
 * backoff) and reports no changes when everything is in place, so `apply`
 * never runs.
 */
export function createPreflightTask(deps: PreflightDeps = systemPreflightDeps()): Task {
  return {
    id: 'preflight',
    description: 'DNS, ports, clock and secrets the join needs',
    async check(ctx): Promise<CheckResult> {
      const { dc, warnings } = await runPreflight(ctx, deps);
      ctx.state.facts.domainController = { ...dc, foundAt: new Date(ctx.clock.now()).toISOString() };
      return { changes: [], warnings, detail: { dc } };
    },
    async apply() {
      // Nothing to change: check never reports changes.
    },
  };
}

/** DNS, ports, clock and secrets the join needs. */
export const preflightTask: Task = createPreflightTask();

/**
 * The clock check's reading: the offset of the first domain controller in
 * preflight's SRV order (orderSrv), read from its LDAP rootDSE. No port
 * probe: the check runs every few minutes, and a DC that does not answer
 * LDAP fails the read anyway.
 */
export async function clockOffset(
  ctx: TaskContext,
  deps: PreflightDeps = systemPreflightDeps(),
): Promise<{ offsetMs: number; source: string }> {
  const record = `_ldap._tcp.${ctx.cfg.domain.name}`;
  const dc = orderSrv(await deps.resolveSrv(record))[0]?.name;
  if (!dc) throw transient(`no ${record} SRV record`, { fix: "check the VM's DNS servers point at the domain's DNS" });
  return { offsetMs: await deps.clockOffset(dc), source: dc };
}
