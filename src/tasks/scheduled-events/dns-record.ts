import { firstDomainController, systemResolver } from '../../agent/dc-locator.js';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { permanent, transient } from '../../agent/errors.js';
import { summarize } from '../../agent/runner.js';
import type { TaskContext } from '../../agent/task.js';
import { keytabComputerName } from '../domain-join/adcli.js';
import { probeKrb5Conf } from '../domain-join/kdc-probe.js';

/**
 * sssd registers `<computer>.<domain>` in AD's DNS (dyndns_update, on by
 * default for id_provider = ad) and never removes it; `adcli
 * delete-computer` deletes the computer object only. A scaled-in VM would
 * leave its A record behind, pointing at an address the next VM may get.
 *
 * The record is removed the way sssd wrote it: a GSS-TSIG signed update
 * (nsupdate -g) as the machine itself (HOST$ from the keytab), since AD
 * makes the writer of a record its owner and a join account usually has no
 * rights on the zone. So it must run before the computer account is deleted:
 * afterwards the keytab no longer authenticates.
 */

const DNS_TIMEOUT_MS = 20_000;

/** The name sssd registers: the host FQDN the join wrote (render.ts: computer name, lower case, in the domain). */
export function registeredName(computerName: string, domain: string): string {
  return `${computerName.toLowerCase()}.${domain.toLowerCase()}`;
}

/** Pure: nsupdate's script deleting the A and AAAA records of `fqdn` at `server`. */
export function deleteRecordScript(server: string, realm: string, zone: string, fqdn: string): string {
  for (const v of [server, realm, zone, fqdn]) if (!/^[A-Za-z0-9.-]+$/.test(v)) throw new Error(`internal: bad DNS name "${v}"`);
  return [
    `server ${server}`,
    `realm ${realm.toUpperCase()}`,
    `zone ${zone.toLowerCase()}`,
    `update delete ${fqdn}. A`,
    `update delete ${fqdn}. AAAA`,
    'send',
    '',
  ].join('\n');
}

/** The first domain controller in SRV order, as preflight finds it. */
export const firstDc = (domain: string): Promise<string> => firstDomainController(domain);

/**
 * nsupdate's words when the server's signed answer does not verify. The
 * request went out signed and was answered: Samba's internal DNS applies a
 * GSS-TSIG update and then signs its reply in a way BIND's nsupdate rejects
 * (exit 2). Whether the update took effect is then a question for the DC.
 */
const UNVERIFIED_REPLY = /tsig verify failure/i;

/** The A and AAAA addresses `fqdn` has at the DC itself (asked directly, not through a cache). */
export async function addressesAtDc(dc: string, fqdn: string): Promise<string[]> {
  const resolver = systemResolver();
  resolver.setServers(await resolver.resolve4(dc));
  const out: string[] = [];
  for (const query of [(n: string) => resolver.resolve4(n), (n: string) => resolver.resolve6(n)]) {
    try {
      out.push(...(await query(fqdn)));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOTFOUND' && code !== 'ENODATA') throw e;
    }
  }
  return out;
}

export interface DnsRecordDeps {
  firstDc: (domain: string) => Promise<string>;
  addressesAtDc: (dc: string, fqdn: string) => Promise<string[]>;
}
const realDeps: DnsRecordDeps = { firstDc, addressesAtDc };

/**
 * Delete this VM's A/AAAA records; returns what was removed, or undefined
 * when the machine has no keytab (never joined, or already left).
 */
export async function removeOwnDnsRecord(ctx: TaskContext, deps: DnsRecordDeps = realDeps): Promise<string | undefined> {
  const domain = ctx.cfg.domain.name.toLowerCase();
  const realm = domain.toUpperCase();
  const keytab = ctx.paths.krb5Keytab;
  if (!(await stat(keytab).catch(() => undefined))) return undefined;
  const klist = await ctx.run({ file: 'klist', args: ['-k', keytab], timeoutMs: 10_000 });
  const name = klist.exitCode === 0 ? keytabComputerName(klist.stdout, realm) : undefined;
  if (!name) return undefined;
  const fqdn = registeredName(name, domain);
  const dc = await deps.firstDc(domain);
  const dir = await mkdtemp(path.join(tmpdir(), 'dsvm-agent-dns-'));
  try {
    const conf = path.join(dir, 'krb5.conf');
    await writeFile(conf, probeKrb5Conf(realm, dc), { mode: 0o600 });
    const env = { KRB5_CONFIG: conf, KRB5CCNAME: `FILE:${path.join(dir, 'ccache')}` };
    const kinit = await ctx.run({ file: 'kinit', args: ['-k', '-t', keytab, `${name}$@${realm}`], env, timeoutMs: DNS_TIMEOUT_MS });
    if (kinit.exitCode !== 0)
      throw transient(`DNS record ${fqdn}: kinit as ${name}$ with ${keytab}: ${summarize(kinit)}`, {
        reason: 'dns-kinit-failed',
        fix: `delete the A record ${fqdn} in the zone ${domain} by hand if the VM is gone`,
      });
    const r = await ctx.run({
      file: 'nsupdate',
      args: ['-g'],
      input: deleteRecordScript(dc, realm, domain, fqdn),
      env,
      timeoutMs: DNS_TIMEOUT_MS,
    });
    if (r.startError)
      throw permanent(`DNS record ${fqdn}: cannot run nsupdate (${r.startError})`, {
        reason: 'nsupdate-missing',
        fix: 'install bind9-dnsutils (dnsutils on older releases)',
      });
    let checked = '';
    if (r.exitCode !== 0 && UNVERIFIED_REPLY.test(`${r.stdout}\n${r.stderr}`)) {
      // Only the DC's own answer decides: gone means the delete was applied.
      const left = await deps.addressesAtDc(dc, fqdn).catch((e: Error) => `cannot ask ${dc}: ${e.message}`);
      if (Array.isArray(left) && left.length === 0) {
        ctx.log.warn(
          `DNS record ${fqdn}: ${dc}'s signed answer did not verify (tsig verify failure), but ${dc} has no A/AAAA for it any more`,
        );
        return `DNS record ${fqdn} (A, AAAA) at ${dc}`;
      }
      checked = Array.isArray(left) ? `; ${dc} still answers ${left.join(', ')}` : `; ${left}`;
    }
    if (r.exitCode !== 0)
      throw transient(`DNS record ${fqdn}: nsupdate -g at ${dc}: ${summarize(r)}${checked}`, {
        reason: 'dns-update-failed',
        fix: `check that ${name}$ may update its own record in ${domain} (secure dynamic updates), or delete it by hand`,
      });
    return `DNS record ${fqdn} (A, AAAA) at ${dc}`;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
