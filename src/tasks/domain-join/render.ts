import type { Config } from '../../agent/config-schema.js';
import { controlCharProblem, groupNameProblem, sssdOptionNameProblem, sssdOptionValueProblem } from '../../agent/config-values.js';
import { configError } from '../../agent/errors.js';
import { BLOCK_BEGIN, BLOCK_END, getMarkedBlock, setMarkedBlock } from '../../agent/fsutil.js';

/**
 * Pure renderers for every file the join writes. Whole files the agent owns
 * carry a header; lines in files others share (krb5.conf, realmd.conf) sit
 * in the agent's marked block; nsswitch.conf gets only the "sss" word added
 * to the databases that lack it, so the distribution's lines stay as they are.
 */

/** What the renderers need besides the config. */
export interface JoinFacts {
  /** AD DNS domain, lower case. */
  domain: string;
  /** Kerberos realm, upper case. */
  realm: string;
  /** NetBIOS computer name, upper case, at most 15 characters. */
  computerName: string;
  /** The computer's DNS name in the domain: <computer name>.<domain>, lower case. */
  hostFqdn: string;
}

export type DomainConfig = Config['domain'];

export function joinFacts(domainName: string, computerName: string): JoinFacts {
  const domain = domainName.toLowerCase();
  return {
    domain,
    realm: domain.toUpperCase(),
    computerName: computerName.toUpperCase(),
    hostFqdn: `${computerName.toLowerCase()}.${domain}`,
  };
}

const HEADER = '# Written by dsvm-agent from /etc/dsvm-agent/config.yaml: local edits are overwritten.\n';

/**
 * Groups allowed to log in: allowGroups plus sudoGroups (an administrator
 * who may sudo but not log in would be useless). Empty means everyone.
 */
export function loginGroups(d: Pick<DomainConfig, 'allowGroups' | 'sudoGroups'>): string[] {
  if (d.allowGroups.length === 0) return [];
  const seen = new Set<string>();
  const out: string[] = [];
  for (const g of [...d.allowGroups, ...d.sudoGroups]) {
    if (!seen.has(g.toLowerCase())) {
      seen.add(g.toLowerCase());
      out.push(g);
    }
  }
  return out;
}

/**
 * The values sssd.conf and sudoers take from the config, checked again here
 * (the schema checks them first): one newline, "," or "[" in a group name
 * would add lines, groups or sections to a root-owned file.
 */
export function assertRenderable(
  d: Pick<DomainConfig, 'allowGroups' | 'sudoGroups' | 'shell' | 'homeTemplate'> &
    Partial<Pick<DomainConfig, 'denyGroups' | 'sssdOptions'>>,
): void {
  const groups: [string, string][] = [
    ...d.allowGroups.map((g, i): [string, string] => [`domain.allowGroups[${i}]`, g]),
    ...d.sudoGroups.map((g, i): [string, string] => [`domain.sudoGroups[${i}]`, g]),
    ...(d.denyGroups ?? []).map((g, i): [string, string] => [`domain.denyGroups[${i}]`, g]),
  ];
  for (const [key, g] of groups) {
    const problem = groupNameProblem(g);
    if (problem) throw configError(`${key}: ${JSON.stringify(g)} ${problem}`, { reason: 'unrenderable-value' });
  }
  for (const [key, v] of [
    ['domain.shell', d.shell],
    ['domain.homeTemplate', d.homeTemplate],
  ] as const) {
    const problem = controlCharProblem(v, 'sssd.conf');
    if (problem) throw configError(`${key}: ${JSON.stringify(v)} ${problem}`, { reason: 'unrenderable-value' });
  }
  for (const [name, value] of Object.entries(d.sssdOptions ?? {})) {
    const problem = sssdOptionNameProblem(name) ?? (typeof value === 'string' ? sssdOptionValueProblem(value) : undefined);
    if (problem) throw configError(`domain.sssdOptions.${name}: ${problem}`, { reason: 'unrenderable-value' });
  }
}

/** An sssdOptions value as sssd.conf spells it: sssd reads booleans as True/False. */
function sssdValue(v: string | number | boolean): string {
  return typeof v === 'boolean' ? (v ? 'True' : 'False') : String(v);
}

/** /etc/sssd/sssd.conf (mode 0600, whole file). */
export function renderSssdConf(d: DomainConfig, f: JoinFacts): string {
  assertRenderable(d);
  const groups = loginGroups(d);
  const lines = [
    HEADER.trimEnd(),
    '[sssd]',
    // No config_file_version: optional since sssd 1.13, and sssd 2.10 (Debian 13) refuses it
    // ("Attribute 'config_file_version' is not allowed in section 'sssd'").
    // pac listed: the PAC responder runs with sssd. Without it krb5_child
    // spends about 5 s per password login trying its socket (under systemd
    // its socket unit fails at boot, before this file exists), which on a
    // slow VM used up sssd's 6 s krb5_auth_timeout: sssd went offline and the
    // login was refused.
    'services = nss, pam, pac',
    `domains = ${f.domain}`,
    '',
    '[nss]',
    '# Local system accounts are never looked up in AD.',
    'filter_users = root',
    'filter_groups = root',
    '',
    '[pam]',
    '',
    `[domain/${f.domain}]`,
    'id_provider = ad',
    'auth_provider = ad',
    'chpass_provider = ad',
    `ad_domain = ${f.domain}`,
    `krb5_realm = ${f.realm}`,
    '# The host name may be longer than the 15-character computer name: say which account is ours.',
    `ad_hostname = ${f.hostFqdn}`,
    `ldap_sasl_authid = ${f.computerName}$`,
    'realmd_tags = manages-system joined-with-adcli',
    'access_provider = simple',
    ...(groups.length > 0 ? [`simple_allow_groups = ${groups.join(', ')}`] : ['# No allowGroups: every domain user may log in.']),
    // Deny wins over allow in sssd's simple provider: a member of both stays out.
    ...(d.denyGroups.length > 0 ? [`simple_deny_groups = ${d.denyGroups.join(', ')}`] : []),
    `use_fully_qualified_names = ${d.fullyQualifiedNames ? 'True' : 'False'}`,
    `fallback_homedir = ${d.homeTemplate}`,
    `default_shell = ${d.shell}`,
    ...(d.idMapping === 'posix'
      ? [
          '# domain.idMapping: posix: uids and gids are the uidNumber/gidNumber AD holds; users without them are not seen.',
          'ldap_id_mapping = False',
        ]
      : ['# domain.idMapping: auto: uids and gids are computed from the SIDs.', 'ldap_id_mapping = True']),
    '# domain.dnsUpdate: whether sssd registers this name in AD DNS (removed again at scale-in and --leave-domain).',
    `dyndns_update = ${d.dnsUpdate ? 'True' : 'False'}`,
    '# Logins keep working while the DC is briefly unreachable.',
    'cache_credentials = True',
    'krb5_store_password_if_offline = True',
    '# Machine password renewal: sssd is its one owner (default: every 30 days).',
    'ad_maximum_machine_account_password_age = 30',
    ...(Object.keys(d.sssdOptions).length > 0
      ? ['# domain.sssdOptions:', ...Object.entries(d.sssdOptions).map(([k, v]) => `${k} = ${sssdValue(v)}`)]
      : []),
  ];
  return lines.join('\n') + '\n';
}

/** The agent's block for /etc/krb5.conf. */
export function renderKrb5Block(f: JoinFacts): string {
  return (
    [
      '[libdefaults]',
      `\tdefault_realm = ${f.realm}`,
      '\tdns_lookup_kdc = true',
      '\tdns_lookup_realm = false',
      '\t# Reverse DNS of a DC rarely matches its name in Azure: "Server not found in Kerberos database".',
      '\trdns = false',
      '',
      '[domain_realm]',
      `\t.${f.domain} = ${f.realm}`,
      `\t${f.domain} = ${f.realm}`,
    ].join('\n') + '\n'
  );
}

/**
 * Put `block` at the very top of a krb5.conf: the profile library merges
 * sections of the same name and keeps the FIRST value of a relation, so our
 * default_realm wins over the distribution's example (ATHENA.MIT.EDU on Debian).
 */
export function setKrb5Block(text: string | undefined, block: string | undefined): string {
  const current = text ?? '';
  if (getMarkedBlock(current) !== undefined) {
    const out = setMarkedBlock(current, block);
    return block === undefined ? out.replace(/^\n+/, '') : out;
  }
  if (block === undefined) return current;
  return `${BLOCK_BEGIN}\n${block.replace(/\n$/, '')}\n${BLOCK_END}\n${current === '' ? '' : '\n' + current}`;
}

/** Databases that must consult sssd. */
export const NSS_DATABASES = ['passwd', 'group', 'shadow'] as const;

/**
 * Add "sss" to the passwd, group and shadow lines that lack it (after
 * "files"/"systemd", as libnss-sss's own maintainer script does). Returns the
 * new text and the databases changed, which undo removes again.
 */
export function addSssToNsswitch(text: string): { text: string; added: string[] } {
  const added: string[] = [];
  const seen = new Set<string>();
  const lines = text.split('\n').map((line) => {
    const m = /^(\s*)([a-z_]+)(\s*:\s*)(.*)$/.exec(line);
    if (!m) return line;
    const [, lead, db, sep, rest] = m as unknown as [string, string, string, string, string];
    if (!(NSS_DATABASES as readonly string[]).includes(db) || seen.has(db)) return line;
    seen.add(db);
    const [services, comment] = splitComment(rest);
    if (services.split(/\s+/).includes('sss')) return line;
    added.push(db);
    return `${lead}${db}${sep}${services.trimEnd()}${services.trim() === '' ? '' : ' '}sss${comment}`;
  });
  for (const db of NSS_DATABASES) {
    if (!seen.has(db)) {
      added.push(db);
      if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
      lines.push(`${db}: files sss`, '');
    }
  }
  return { text: lines.join('\n'), added };
}

/** Remove "sss" from the given databases' lines (the ones the agent added it to). */
export function removeSssFromNsswitch(text: string, databases: readonly string[]): string {
  return text
    .split('\n')
    .map((line) => {
      const m = /^(\s*)([a-z_]+)(\s*:\s*)(.*)$/.exec(line);
      if (!m || !databases.includes(m[2]!)) return line;
      const [services, comment] = splitComment(m[4]!);
      const kept = services.split(/\s+/).filter((s) => s !== '' && s !== 'sss');
      return `${m[1]}${m[2]}${m[3]}${kept.join(' ')}${comment}`;
    })
    .join('\n');
}

function splitComment(rest: string): [string, string] {
  const i = rest.indexOf('#');
  return i < 0 ? [rest, ''] : [rest.slice(0, i), ' ' + rest.slice(i).trimStart()];
}

/** The agent's block for /etc/realmd.conf, so `realm list` and later realmd runs agree with what the agent set up. */
export function renderRealmdBlock(d: DomainConfig, f: JoinFacts): string {
  // realmd spells the user and domain %U and %D where sssd uses %u and %d.
  const home = d.homeTemplate.replace(/%u/g, '%U').replace(/%d/g, '%D');
  return (
    [
      '[service]',
      '# Packages come with the image; realmd must not try PackageKit.',
      'automatic-install = no',
      '',
      '[users]',
      `default-home = ${home}`,
      `default-shell = ${d.shell}`,
      '',
      `[${f.domain}]`,
      `fully-qualified-names = ${d.fullyQualifiedNames ? 'yes' : 'no'}`,
      `automatic-id-mapping = ${d.idMapping === 'posix' ? 'no' : 'yes'}`,
      `computer-name = ${f.computerName}`,
      'membership-software = adcli',
      'client-software = sssd',
    ].join('\n') + '\n'
  );
}

/** A group name as sudo sees it through sssd: lower case (sssd is case-insensitive for AD), qualified if configured, escaped. */
export function sudoersGroup(group: string, d: Pick<DomainConfig, 'fullyQualifiedNames'>, f: Pick<JoinFacts, 'domain'>): string {
  const name = (d.fullyQualifiedNames && !group.includes('@') ? `${group}@${f.domain}` : group).toLowerCase();
  return '%' + name.replace(/[\\\s,:=()"!#%]/g, (c) => `\\${c}`);
}

/** /etc/sudoers.d/dsvm-agent (0440), or undefined when no sudoGroups are configured. */
export function renderSudoers(d: DomainConfig, f: JoinFacts): string | undefined {
  if (d.sudoGroups.length === 0) return undefined;
  assertRenderable(d);
  return (
    HEADER +
    '# Members of domain.sudoGroups may run any command after entering their own password.\n' +
    d.sudoGroups.map((g) => `${sudoersGroup(g, d, f)} ALL=(ALL:ALL) ALL`).join('\n') +
    '\n'
  );
}

/** The sshd drop-in's file name: sorts before cloud-init's 50-cloud-init.conf and Ubuntu's 60-cloudimg-settings.conf. */
export const SSHD_DROP_IN = '10-dsvm-agent.conf';

/** /etc/ssh/sshd_config.d/10-dsvm-agent.conf. */
export function renderSshdDropIn(): string {
  return (
    HEADER +
    '# sshd keeps the FIRST value it reads for each keyword, so this file is named to\n' +
    '# sort before 50-cloud-init.conf, which sets PasswordAuthentication no on Azure images.\n' +
    'PasswordAuthentication yes\n' +
    'KbdInteractiveAuthentication yes\n' +
    'GSSAPIAuthentication yes\n' +
    'GSSAPICleanupCredentials yes\n' +
    'UsePAM yes\n'
  );
}

/** The pam-auth-update profile name (a file in /usr/share/pam-configs). */
export const MKHOMEDIR_PROFILE = 'dsvm-agent-mkhomedir';

/**
 * Our own pam-auth-update profile rather than Debian's "mkhomedir": that one
 * has no umask (pam_mkhomedir then uses 0022, or HOME_MODE from login.defs),
 * so homes would be readable by every other user of a shared VM, and editing
 * it would be undone by the next libpam-modules upgrade. sssd cannot create
 * homes itself (oddjob-mkhomedir is Red Hat only), so PAM it is.
 */
export function renderMkhomedirProfile(): string {
  return [
    'Name: Create home directories for domain users, private (dsvm-agent, umask 0077)',
    'Default: yes',
    'Priority: 0',
    'Session-Type: Additional',
    'Session-Interactive-Only: yes',
    'Session:',
    '\toptional\t\t\tpam_mkhomedir.so umask=0077 skel=/etc/skel',
    '',
  ].join('\n');
}

/** The line pam-auth-update writes into common-session when our profile is enabled. */
export const MKHOMEDIR_SESSION_LINE = /^session\s+optional\s+pam_mkhomedir\.so\s+umask=0077\s+skel=\/etc\/skel\s*$/m;
/** Any pam_mkhomedir line (Debian's profile included), to detect a competing profile. */
export const ANY_MKHOMEDIR_LINE = /^session\s+\S+\s+pam_mkhomedir\.so.*$/gm;
