import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { RunResult } from '../../agent/runner.js';
import type { TaskContext } from '../../agent/task.js';

/**
 * Is there no account called NAME$ in the domain? Asked of the KDC with no
 * credentials: `kinit NAME$@REALM` given no password (stdin at EOF), so no
 * password is ever sent. Only a plain "not found"
 * (KDC_ERR_C_PRINCIPAL_UNKNOWN) means free; any other answer (the account
 * exists, the KDC is unreachable, kinit is missing, output not understood)
 * says nothing, and the LDAP look-up decides. Asked only of the DC this
 * run's preflight found, which the join then uses too; without one it is not
 * asked. Why the KDC, and why one DC: docs/domain-join.md (Collisions, One
 * DC for the whole join, How long a join takes).
 */

/**
 * A krb5.conf naming that one DC as the realm's only KDC, so neither DNS nor
 * the image's /etc/krb5.conf (another default realm, old KDC lists) can send
 * the question elsewhere. TCP (udp_preference_limit = 1): the port the
 * preflight checked. It lives in a private temporary directory, never under
 * the agent's root (the task's `plan` must change nothing there), and goes
 * when kinit ends; the ticket cache, never filled, lives in memory.
 */
export function probeKrb5Conf(realm: string, dc: string): string {
  return [
    '[libdefaults]',
    `\tdefault_realm = ${realm}`,
    '\tdns_lookup_kdc = false',
    '\tdns_lookup_realm = false',
    '\trdns = false',
    '\tudp_preference_limit = 1',
    '[realms]',
    `\t${realm} = {`,
    `\t\tkdc = ${dc}`,
    '\t}',
    '',
  ].join('\n');
}

/** The computer account's Kerberos principal, NAME$@REALM. */
const principalOf = (computerName: string, realm: string): string => `${computerName.toUpperCase()}$@${realm.toUpperCase()}`;

/** kinit's argv: the computer account's principal, nothing else. */
export function probeArgv(computerName: string, realm: string): string[] {
  return [principalOf(computerName, realm)];
}

/** MIT kinit's words for KDC_ERR_C_PRINCIPAL_UNKNOWN (C locale), for exactly this principal. */
export function saysNoSuchPrincipal(r: Pick<RunResult, 'exitCode' | 'stderr'>, computerName: string, realm: string): boolean {
  if (r.exitCode === 0) return false;
  const m = /Client '([^']+)' not found in Kerberos database/.exec(r.stderr);
  return m !== null && m[1]!.toUpperCase() === principalOf(computerName, realm);
}

const PROBE_TIMEOUT_MS = 15_000;

/** True only when the DC `dc` said plainly that no account NAME$ exists. */
export async function kdcSaysNoAccount(ctx: TaskContext, computerName: string, dc: string): Promise<boolean> {
  const realm = ctx.cfg.domain.name.toUpperCase();
  let dir: string | undefined;
  try {
    dir = await mkdtemp(path.join(tmpdir(), 'dsvm-agent-kdc-'));
    const conf = path.join(dir, 'krb5.conf');
    await writeFile(conf, probeKrb5Conf(realm, dc), { mode: 0o600 });
    const r = await ctx.run({
      file: 'kinit',
      args: probeArgv(computerName, realm),
      input: '',
      env: { KRB5_CONFIG: conf, KRB5CCNAME: 'MEMORY:' },
      timeoutMs: PROBE_TIMEOUT_MS,
    });
    const absent = saysNoSuchPrincipal(r, computerName, realm);
    ctx.log.debug(`KDC ${dc} on ${computerName}$: ${absent ? 'no such account' : 'account exists, or no clear answer'}`);
    return absent;
  } catch (err) {
    ctx.log.debug(`KDC look-up of ${computerName}$ not usable: ${(err as Error).message}`);
    return false;
  } finally {
    if (dir) await rm(dir, { recursive: true, force: true });
  }
}
