import type { RunResult } from '../../agent/runner.js';
import type { TaskContext } from '../../agent/task.js';

/**
 * Is there no account called NAME$ in the domain? Asked of the KDC, with no
 * credentials at all: `kinit NAME$@REALM` sends an AS-REQ without
 * pre-authentication, and the KDC answers KDC_ERR_C_PRINCIPAL_UNKNOWN
 * ("Client ... not found in Kerberos database") only when no account has that
 * sAMAccountName, disabled ones included. An existing account answers
 * "pre-authentication required" and kinit, given no password (stdin at EOF),
 * stops there (a disabled account too: the lab's Samba KDC asks it for
 * pre-authentication as well). No password is ever sent.
 *
 * One round trip to the KDC (~30 ms in the lab), where `adcli show-computer`
 * takes ~0.5 s: every adcli run discovers the DC with a NetLogon ping and
 * then waits a fixed 0.4 s for more answers (adcli's addisco.c), before its
 * own Kerberos login and LDAP search. On first boot the derived name is
 * nearly always free, so the join usually needs no LDAP look-up at all; when
 * the answer is anything but a clear "not found" (the account exists, the
 * KDC is unreachable, kinit is missing, output not understood), the probe
 * says nothing and the LDAP look-up decides, with its own error handling.
 */

/**
 * kinit's environment: no configuration file at all, so the image's
 * /etc/krb5.conf (another default realm, old KDC lists) cannot steer it, and
 * nothing is written (the task's `plan` must change nothing). MIT's defaults
 * find the realm's KDCs through DNS SRV, as the preflight checked they can;
 * the ticket cache, never filled, lives in memory.
 */
export const PROBE_ENV: Readonly<Record<string, string>> = { KRB5_CONFIG: '/dev/null', KRB5CCNAME: 'MEMORY:' };

/** kinit's argv: the computer account's principal, nothing else. */
export function probeArgv(computerName: string, realm: string): string[] {
  return [`${computerName.toUpperCase()}$@${realm.toUpperCase()}`];
}

/** MIT kinit's words for KDC_ERR_C_PRINCIPAL_UNKNOWN (C locale), for exactly this principal. */
export function saysNoSuchPrincipal(r: Pick<RunResult, 'exitCode' | 'stderr'>, computerName: string, realm: string): boolean {
  if (r.exitCode === 0) return false;
  const principal = `${computerName.toUpperCase()}$@${realm.toUpperCase()}`;
  const m = /Client '([^']+)' not found in Kerberos database/.exec(r.stderr);
  return m !== null && m[1]!.toUpperCase() === principal;
}

const PROBE_TIMEOUT_MS = 15_000;

/** True only when the KDC said plainly that no account NAME$ exists. */
export async function kdcSaysNoAccount(ctx: TaskContext, computerName: string): Promise<boolean> {
  const realm = ctx.cfg.domain.name.toUpperCase();
  const r = await ctx.run({
    file: 'kinit',
    args: probeArgv(computerName, realm),
    input: '',
    env: { ...PROBE_ENV },
    timeoutMs: PROBE_TIMEOUT_MS,
  });
  const absent = saysNoSuchPrincipal(r, computerName, realm);
  ctx.log.debug(`KDC on ${computerName}$: ${absent ? 'no such account' : 'account exists, or no clear answer'}`);
  return absent;
}
