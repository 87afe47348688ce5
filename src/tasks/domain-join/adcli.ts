import { AgentError, permanent, transient } from '../../agent/errors.js';
import type { RunResult } from '../../agent/runner.js';
import type { ExistingComputer } from './computer-name.js';

/**
 * argv builders and output parsers for adcli. Secrets never go in argv:
 * `--stdin-password` reads the join password (until EOF). A pre-staged
 * one-time password would be an argv value with `--one-time-password`, so the
 * agent uses `--login-type=computer --stdin-password` instead: with only
 * computer logins allowed, adcli asks its password callback (stdin) for the
 * computer account's password (adconn.c, _adcli_kinit_computer_creds).
 */

export interface JoinCredentials {
  kind: 'user' | 'computer';
  /** The join account (kind "user"). */
  user?: string;
  /** The join account's ticket (kind "user"): adcli uses it instead of asking for the password. */
  ccache?: string;
}

export interface JoinArgs {
  domain: string;
  realm: string;
  computerName: string;
  hostFqdn: string;
  keytab: string;
  ou?: string;
  osName?: string;
  osVersion?: string;
  /** The vmId stamp; left out for an adcli without --description (0.9.0: see adcli-compat.ts). */
  description?: string;
  credentials: JoinCredentials;
  /** Talk to this DC only (adcli --domain-controller) instead of discovering one. */
  domainController?: string;
}

function loginArgs(c: JoinCredentials): string[] {
  if (c.kind === 'computer') return ['--login-type=computer', '--stdin-password'];
  const user = ['--login-type=user', `--login-user=${c.user ?? ''}`];
  return c.ccache ? [...user, `--login-ccache=${c.ccache}`] : [...user, '--stdin-password'];
}

/** `adcli join ...`; the password goes on stdin, unless the join account's ticket is given. */
export function joinArgv(a: JoinArgs): string[] {
  return [
    'join',
    '--verbose',
    `--domain=${a.domain}`,
    `--domain-realm=${a.realm}`,
    ...(a.domainController ? [`--domain-controller=${a.domainController}`] : []),
    `--computer-name=${a.computerName}`,
    `--host-fqdn=${a.hostFqdn}`,
    `--host-keytab=${a.keytab}`,
    ...(a.ou ? [`--domain-ou=${a.ou}`] : []),
    ...(a.osName ? [`--os-name=${a.osName}`] : []),
    ...(a.osVersion ? [`--os-version=${a.osVersion}`] : []),
    ...(a.description !== undefined ? [`--description=${a.description}`] : []),
    ...loginArgs(a.credentials),
    '--show-details',
  ];
}

/** `adcli testjoin`: validates the keytab's machine password against the DC. */
export function testJoinArgv(domain: string, keytab: string): string[] {
  return ['testjoin', `--domain=${domain}`, `--host-keytab=${keytab}`];
}

/** `kinit -k`: authenticates the keytab's machine key for NAME$ (the trust check where adcli's testjoin cannot name the machine). */
export function keytabLoginArgv(keytab: string, computerName: string, realm: string): string[] {
  return ['-k', '-t', keytab, `${computerName}$@${realm}`];
}

/** `adcli show-computer NAME` with the join account (read-only LDAP), optionally at one DC. */
export function showComputerArgv(domain: string, realm: string, user: string, computerName: string, domainController?: string): string[] {
  return [
    'show-computer',
    `--domain=${domain}`,
    `--domain-realm=${realm}`,
    ...(domainController ? [`--domain-controller=${domainController}`] : []),
    '--login-type=user',
    `--login-user=${user}`,
    '--stdin-password',
    computerName,
  ];
}

/** `adcli delete-computer NAME` with the join account. */
export function deleteComputerArgv(domain: string, realm: string, user: string, computerName: string): string[] {
  return ['delete-computer', `--domain=${domain}`, `--domain-realm=${realm}`, `--login-user=${user}`, '--stdin-password', computerName];
}

/** Last meaningful stderr lines without adcli's "adcli: " prefix: the DC's own words. */
export function adcliWords(r: Pick<RunResult, 'stderr' | 'stdout'>): string {
  const lines = (r.stderr || r.stdout)
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('* '));
  const errors = lines.filter((l) => l.startsWith('adcli:') || l.startsWith('!'));
  const chosen = (errors.length ? errors : lines).slice(-1)[0] ?? '';
  return chosen.replace(/^adcli:\s*/, '').replace(/^!\s*/, '');
}

/** What the fix texts may name: the join account, the OU, or the pre-staged computer account. */
interface FixContext {
  user?: string;
  ou?: string;
  /** Set for a pre-staged join (domain.oneTimePassword): the computer account's name. */
  prestaged?: string;
}

interface Rule {
  test: RegExp;
  kind: 'transient' | 'permanent';
  reason: string;
  fix: (ctx: FixContext) => string;
}

/** Ordered: the first match wins, so specific causes come before generic connection failures. */
const RULES: Rule[] = [
  {
    test: /Clock skew too great/i,
    kind: 'permanent',
    reason: 'clock-skew',
    fix: () => "synchronise this VM's clock with the DC (chrony), then retry",
  },
  {
    test: /Preauthentication failed|Password incorrect|not found in Kerberos database|Invalid credentials|credentials have been revoked|Password has expired|password must be changed/i,
    kind: 'permanent',
    reason: 'join-bad-credentials',
    fix: ({ user, prestaged }) =>
      prestaged
        ? `the pre-staged computer account ${prestaged}$ must exist and be enabled, and domain.oneTimePassword must be the one-time password it was staged with`
        : `check domain.joinUser (${user ?? '?'}) and the join password secret: the account must exist, be enabled, and the password be current`,
  },
  {
    test: /organizational unit (does not exist|is invalid)|Couldn't lookup computer container|No such object/i,
    kind: 'permanent',
    reason: 'join-ou-missing',
    fix: ({ ou }) => `create the OU ${ou ?? ''} or correct domain.computerOu (a DN such as OU=DSVM,DC=contoso,DC=com)`.replace('  ', ' '),
  },
  {
    test: /Insufficient (permissions|access)|INSUFF_ACCESS|Access denied|not allowed|0000052E|00002098/i,
    kind: 'permanent',
    reason: 'join-insufficient-rights',
    fix: ({ user, ou }) =>
      `delegate "Create computer objects" (and Reset Password, Validated write to DNS host name and SPN on existing ones) on ${ou ?? 'the Computers container'} to ${user ?? 'the join account'}`,
  },
  {
    test: /Constraint violation|already exists|ENTRY_EXISTS/i,
    kind: 'permanent',
    reason: 'join-name-conflict',
    fix: () => 'another object already uses this name or DNS host name: delete the stale computer object or set domain.computerName',
  },
  {
    test: /Cannot contact any KDC|Can't contact LDAP server|Couldn't connect to LDAP server|Couldn't connect to host|Cannot find KDC|Cannot resolve network address|Couldn't find usable domain controller|No LDAP SRV records|No route to host|Connection refused|timed out|Timeout|Server down/i,
    kind: 'transient',
    reason: 'dc-unreachable',
    fix: () => 'wait for the domain controller to be reachable (DNS SRV records, TCP 88/389/464)',
  },
];

/** Classify a failed adcli run: permanent causes keep the DC's words and get a fix; connection problems are transient. */
export function parseAdcliError(op: string, r: RunResult, ctx: FixContext = {}): AgentError {
  if (r.startError) {
    return permanent(`adcli ${op}: cannot run adcli (${r.startError})`, { reason: 'adcli-missing', fix: 'install the adcli package' });
  }
  if (r.timedOut) {
    return transient(`adcli ${op}: timed out talking to the domain`, {
      reason: 'dc-unreachable',
      fix: 'check that the DC answers on TCP 88, 389 and 464',
    });
  }
  const words = adcliWords(r);
  // Only error lines: --verbose progress lines ("* ...") mention things like
  // "A computer account for X$ does not exist" on the way to success.
  const text = `${r.stderr}\n${r.stdout}`
    .split('\n')
    .filter((l) => !l.trim().startsWith('*'))
    .join('\n');
  for (const rule of RULES) {
    if (rule.test.test(text)) {
      const make = rule.kind === 'transient' ? transient : permanent;
      return make(`adcli ${op} failed: ${words}`, { reason: rule.reason, fix: rule.fix(ctx) });
    }
  }
  return permanent(`adcli ${op} failed (exit ${r.exitCode ?? r.signal}): ${words || 'no message'}`, {
    reason: 'join-failed',
    fix: "read the DC's message above; run `adcli join --verbose` by hand to see every step",
  });
}

/** `klist -k` output → the machine principal's computer name ("NAME" from "NAME$@REALM"). */
export function keytabComputerName(klistOutput: string, realm: string): string | undefined {
  for (const line of klistOutput.split('\n')) {
    const m = /^\s*\d+\s+(?:\S+\s+\S+\s+)?([^\s/]+)\$@(\S+)\s*$/.exec(line);
    if (m && m[2]!.toUpperCase() === realm.toUpperCase()) return m[1]!.toUpperCase();
  }
  return undefined;
}

/** Windows FILETIME (100 ns since 1601) to epoch ms; 0 and "never" to undefined. */
export function fileTimeToMs(value: string | undefined): number | undefined {
  if (!value || !/^\d+$/.test(value) || value === '0' || value === '9223372036854775807') return undefined;
  return Number(BigInt(value) / 10_000n - 11_644_473_600_000n);
}

/**
 * `adcli show-computer` prints "attribute:" lines followed by indented
 * values. Returns the attributes (lower-cased names), or undefined when the
 * object does not exist.
 */
export function parseShowComputer(stdout: string): Record<string, string[]> {
  const attrs: Record<string, string[]> = {};
  let current: string | undefined;
  for (const line of stdout.split('\n')) {
    if (line.trim() === '') continue;
    const head = /^([A-Za-z][\w-]*):\s*$/.exec(line);
    if (head) {
      current = head[1]!.toLowerCase();
      attrs[current] = [];
    } else if (current && /^\s/.test(line)) {
      const v = line.trim();
      if (v !== '- not set -') attrs[current]!.push(v);
    }
  }
  return attrs;
}

/** The facts the name collision rule needs, from show-computer's attributes. */
export function existingFromShow(attrs: Record<string, string[]>): ExistingComputer {
  const one = (k: string): string | undefined => attrs[k]?.[0];
  const out: ExistingComputer = {};
  const description = attrs.description?.join(' ');
  if (description) out.description = description;
  const pwd = fileTimeToMs(one('pwdlastset'));
  if (pwd !== undefined) out.pwdLastSet = pwd;
  const logon = fileTimeToMs(one('lastlogontimestamp'));
  if (logon !== undefined) out.lastLogon = logon;
  return out;
}

/** show-computer's way of saying the object does not exist. */
export function isNoSuchComputer(r: Pick<RunResult, 'stderr' | 'stdout'>): boolean {
  return /No computer account for \S+ exists/i.test(r.stderr);
}
