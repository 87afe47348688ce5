import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { permanent, transient, type AgentError } from '../../agent/errors.js';
import { summarize, type RunResult } from '../../agent/runner.js';
import type { TaskContext } from '../../agent/task.js';
import type { ExistingComputer } from './computer-name.js';
import { existingFromShow } from './adcli.js';
import { probeKrb5Conf } from './kdc-probe.js';

/**
 * adcli 0.9.0 (Debian 11, Ubuntu 20.04) has neither `join --description`
 * nor `show-computer`: both arrived in 0.9.1 (adcli's NEWS). No adcli has a
 * `--version` (0.9.0, 0.9.1 and 0.9.2 all answer "unknown option"), so what
 * this adcli can do is read from its own help: the command list of
 * `adcli --help` and the options of `adcli join --help` (captured outputs:
 * test/fixtures/domain-join/adcli*). Where it lacks them, the same facts go
 * over LDAP with OpenLDAP's tools (ldap-utils, SASL GSSAPI from
 * libsasl2-modules-gssapi-mit): after the join, `ldapmodify` writes the
 * vmId stamp into `description`; the name check is an `ldapsearch` for
 * sAMAccountName=NAME$, parsed into the same facts as show-computer's.
 */
export interface AdcliFeatures {
  /** What the help says, for messages: "0.9.1 or newer" or "0.9.0 or older". */
  label: string;
  /** `adcli join --description` (0.9.1+). */
  joinDescription: boolean;
  /** `adcli show-computer` (0.9.1+). */
  showComputer: boolean;
}

/** Pure: what `adcli --help` (command list) and `adcli join --help` (options) say this adcli can do. */
export function adcliFeatures(help: string, joinHelp: string): AdcliFeatures {
  const showComputer = /^\s+show-computer\s/m.test(help);
  const joinDescription = /--description[=\s]/.test(joinHelp);
  return { label: showComputer && joinDescription ? '0.9.1 or newer' : '0.9.0 or older', joinDescription, showComputer };
}

/** Ask this machine's adcli (two local runs, no network). */
export async function detectAdcli(ctx: DirectoryDoors): Promise<AdcliFeatures> {
  const [help, joinHelp] = await Promise.all([
    ctx.run({ file: 'adcli', args: ['--help'], timeoutMs: 10_000 }),
    ctx.run({ file: 'adcli', args: ['join', '--help'], timeoutMs: 10_000 }),
  ]);
  if (help.startError)
    throw permanent(`cannot run adcli (${help.startError})`, { reason: 'adcli-missing', fix: 'install the adcli package' });
  const features = adcliFeatures(help.stdout + help.stderr, joinHelp.stdout + joinHelp.stderr);
  ctx.log.debug(`adcli ${features.label}: join --description ${features.joinDescription}, show-computer ${features.showComputer}`);
  return features;
}

/** The only doors the LDAP fallback uses (a lab test drives it inside a lab client with the real runner). */
export type DirectoryDoors = Pick<TaskContext, 'run' | 'log'>;

/** The join account and the DC the fallback talks to: the one this run's preflight found. */
export interface DirectoryLogin {
  realm: string;
  dc: string;
  user: string;
  password: string;
}

const LDAP_TIMEOUT_MS = 60_000;

/** `user` or `user@realm` → the principal kinit wants. */
export function joinPrincipal(user: string, realm: string): string {
  const at = user.lastIndexOf('@');
  return at < 0 ? `${user}@${realm.toUpperCase()}` : `${user.slice(0, at)}@${user.slice(at + 1).toUpperCase()}`;
}

/** DC=contoso,DC=com for contoso.com. */
export function domainDn(realm: string): string {
  return realm
    .toLowerCase()
    .split('.')
    .map((part) => `DC=${part}`)
    .join(',');
}

/** RFC 4515 escaping for a value in a search filter. */
const filterValue = (v: string): string => v.replace(/[\\*()\0]/g, (c) => `\\${c.charCodeAt(0).toString(16).padStart(2, '0')}`);

/** ldapsearch's argv for the computer NAME$ (GSSAPI, quiet, unwrapped LDIF). */
export function searchComputerArgv(dc: string, realm: string, computerName: string): string[] {
  return [
    ...ldapCommon(dc),
    '-LLL',
    '-o',
    'ldif-wrap=no',
    '-b',
    domainDn(realm),
    `(&(objectClass=computer)(sAMAccountName=${filterValue(computerName.toUpperCase())}$))`,
    'sAMAccountName',
    'description',
    'pwdLastSet',
    'lastLogonTimestamp',
    'operatingSystem',
    'operatingSystemVersion',
    'dNSHostName',
  ];
}

/** ldapmodify's argv; the LDIF goes on stdin. */
export function modifyArgv(dc: string): string[] {
  return ldapCommon(dc);
}

/** -Y GSSAPI with the ticket in KRB5CCNAME; -N: the DC's name as given (no reverse DNS), as the pinned krb5.conf says; -Q: no SASL chatter. */
const ldapCommon = (dc: string): string[] => ['-Q', '-N', '-Y', 'GSSAPI', '-H', `ldap://${dc}`];

/** The LDIF that replaces a computer object's description. */
export function descriptionLdif(dn: string, description: string): string {
  if (/[\r\n]/.test(dn) || /[\r\n]/.test(description)) throw new Error('internal: LDIF values must be one line');
  return `dn: ${dn}\nchangetype: modify\nreplace: description\ndescription: ${description}\n-\n`;
}

/** One LDIF entry from ldapsearch -LLL: its dn and attributes (lower-case names), base64 values decoded. */
export interface LdifEntry {
  dn: string;
  attrs: Record<string, string[]>;
}

/** Pure: parse ldapsearch -LLL output (referral comments skipped, folded lines joined). */
export function parseLdif(stdout: string): LdifEntry[] {
  const entries: LdifEntry[] = [];
  let current: LdifEntry | undefined;
  const lines = stdout.split('\n').reduce<string[]>((acc, line) => {
    if (line.startsWith(' ') && acc.length > 0) acc[acc.length - 1] += line.slice(1);
    else acc.push(line);
    return acc;
  }, []);
  for (const line of lines) {
    if (line.trim() === '') {
      current = undefined;
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = /^([A-Za-z][\w;-]*)(::?)\s?(.*)$/.exec(line);
    if (!m) continue;
    const value = m[2] === '::' ? Buffer.from(m[3]!, 'base64').toString('utf8') : m[3]!;
    const name = m[1]!.toLowerCase();
    if (name === 'dn') {
      current = { dn: value, attrs: {} };
      entries.push(current);
    } else if (current) (current.attrs[name] ??= []).push(value);
  }
  return entries;
}

/**
 * A Kerberos ticket of the join account: kinit with the password on stdin
 * into a FILE ccache in a private (0700) temporary directory, with a
 * krb5.conf naming only the preflight's DC (the same DC the join and the
 * name check talk to). The ccache path goes to the ldap tools in their own
 * environment and to `adcli join --login-ccache`: the name claim, the join
 * and the 0.9.0 stamp use one ticket, so the join does not authenticate a
 * second time. Whoever opens it closes it (the directory, ticket included,
 * is removed).
 */
export interface JoinTicket {
  /** KRB5_CONFIG and KRB5CCNAME for the LDAP tools. */
  readonly env: Record<string, string>;
  /** The credential cache, as adcli's --login-ccache takes it. */
  readonly ccache: string;
  /** The DC its krb5.conf names. */
  readonly dc: string;
  close(): Promise<void>;
}

export async function openJoinTicket(ctx: DirectoryDoors, login: DirectoryLogin): Promise<JoinTicket> {
  const dir = await mkdtemp(path.join(tmpdir(), 'dsvm-agent-ldap-'));
  const close = (): Promise<void> => rm(dir, { recursive: true, force: true });
  try {
    const conf = path.join(dir, 'krb5.conf');
    await writeFile(conf, probeKrb5Conf(login.realm.toUpperCase(), login.dc), { mode: 0o600 });
    const ccache = `FILE:${path.join(dir, 'ccache')}`;
    const env = { KRB5_CONFIG: conf, KRB5CCNAME: ccache };
    const principal = joinPrincipal(login.user, login.realm);
    const r = await ctx.run({ file: 'kinit', args: [principal], input: `${login.password}\n`, env, timeoutMs: LDAP_TIMEOUT_MS });
    if (r.exitCode !== 0)
      throw directoryError(`kinit ${principal}`, r, `check domain.joinUser (${login.user}) and the join password secret`);
    return { env, ccache, dc: login.dc, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Run `use` with the join account's ticket: the one given (left open), else a fresh one closed after. */
export async function withJoinTicket<T>(
  ctx: DirectoryDoors,
  login: DirectoryLogin,
  use: (env: Record<string, string>) => Promise<T>,
  held?: JoinTicket,
): Promise<T> {
  if (held) return use(held.env);
  const ticket = await openJoinTicket(ctx, login);
  try {
    return await use(ticket.env);
  } finally {
    await ticket.close();
  }
}

/** Classify a failed kinit/ldapsearch/ldapmodify: unreachable DC is transient, everything else permanent with a fix. */
export function directoryError(what: string, r: RunResult, credentialsFix: string): AgentError {
  const text = `${r.stderr}\n${r.stdout}`;
  if (r.startError)
    return permanent(`${what}: cannot run it (${r.startError})`, {
      reason: 'ldap-tools-missing',
      fix: 'install ldap-utils, libsasl2-modules-gssapi-mit and krb5-user (the dsvm-agent package depends on them)',
    });
  if (r.timedOut || /Cannot contact any KDC|Can't contact LDAP server|Connection refused|No route to host|timed out/i.test(text))
    return transient(`${what}: ${summarize(r)}`, {
      reason: 'dc-unreachable',
      fix: 'wait for the domain controller to be reachable (TCP 88 and 389)',
    });
  if (/No worthy mechs found|Unknown authentication method/i.test(text))
    return permanent(`${what}: ${summarize(r)}`, {
      reason: 'ldap-tools-missing',
      fix: 'install libsasl2-modules-gssapi-mit (SASL GSSAPI)',
    });
  if (/Preauthentication failed|Password incorrect|not found in Kerberos database|Password has expired|revoked/i.test(text))
    return permanent(`${what}: ${summarize(r)}`, { reason: 'join-bad-credentials', fix: credentialsFix });
  if (/Insufficient access|\(50\)/i.test(text))
    return permanent(`${what}: ${summarize(r)}`, {
      reason: 'join-insufficient-rights',
      fix: 'give the join account write access to the description of computer objects in the OU (it has it on the objects it creates)',
    });
  return permanent(`${what} failed (exit ${r.exitCode ?? r.signal}): ${summarize(r)}`, {
    reason: 'ldap-failed',
    fix: 'read the message above; the same command by hand with -d1 shows every step',
  });
}

/** Search the computer NAME$ with an existing ticket; undefined when there is none. */
async function searchComputer(
  ctx: DirectoryDoors,
  login: DirectoryLogin,
  env: Record<string, string>,
  name: string,
): Promise<LdifEntry | undefined> {
  const r = await ctx.run({ file: 'ldapsearch', args: searchComputerArgv(login.dc, login.realm, name), env, timeoutMs: LDAP_TIMEOUT_MS });
  if (r.exitCode !== 0) throw directoryError(`ldapsearch ${name}$`, r, 'check domain.joinUser and the join password secret');
  return parseLdif(r.stdout)[0];
}

/** adcli show-computer's stand-in: the computer NAME$ as the name rule sees it, or undefined. */
export async function lookupComputerOverLdap(
  ctx: DirectoryDoors,
  login: DirectoryLogin,
  name: string,
): Promise<ExistingComputer | undefined> {
  const entry = await withJoinTicket(ctx, login, (env) => searchComputer(ctx, login, env, name));
  return entry ? existingFromShow(entry.attrs) : undefined;
}

/**
 * adcli join --description's stand-in, right after the join: write the
 * stamp into the new object's description with the join account, which
 * created the object and may write it (a machine's own keytab may not: AD
 * gives a computer's SELF no write on description, and neither does
 * Samba's default ACL; see docs/domain-join.md). Read back to prove it.
 */
export async function stampDescriptionOverLdap(
  ctx: DirectoryDoors,
  login: DirectoryLogin,
  name: string,
  description: string,
  held?: JoinTicket,
): Promise<void> {
  await withJoinTicket(
    ctx,
    login,
    async (env) => {
      const entry = await searchComputer(ctx, login, env, name);
      if (!entry)
        throw transient(`ldapsearch: the computer account ${name}$ adcli just created is not on ${login.dc} yet`, {
          reason: 'ldap-not-found',
          fix: 'retry; the DC that answered the join should have it',
        });
      if (entry.attrs.description?.join(' ') === description) return;
      const r = await ctx.run({
        file: 'ldapmodify',
        args: modifyArgv(login.dc),
        input: descriptionLdif(entry.dn, description),
        env,
        timeoutMs: LDAP_TIMEOUT_MS,
      });
      if (r.exitCode !== 0)
        throw directoryError(`ldapmodify description of ${entry.dn}`, r, 'check domain.joinUser and the join password secret');
      const after = await searchComputer(ctx, login, env, name);
      if (after?.attrs.description?.join(' ') !== description)
        throw permanent(`ldapmodify: the description of ${entry.dn} did not take (${after?.attrs.description?.join(' ') ?? 'none'})`, {
          reason: 'ldap-failed',
          fix: 'check that the join account may write the description of computer objects in the OU',
        });
    },
    held,
  );
}
