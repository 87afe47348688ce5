import path from 'node:path';
import { Cron } from 'croner';

/**
 * Rules for config values that end up inside other files (sssd.conf,
 * sudoers, mount units, the metrics textfile) or decide where root writes.
 * The schema applies them (`config check` exits 2 naming the key), and each
 * renderer applies them again before it writes (defence in depth: a value
 * that reaches a renderer some other way still cannot inject a line or
 * aim root at a system file). Each returns what is wrong and the fix, or
 * undefined when the value is fine.
 */

/** C0 controls and DEL: a newline would start a new line (and a new setting) in any line-based file. */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

export function controlCharProblem(value: string, what: string): string | undefined {
  return CONTROL.test(value)
    ? `must not contain a newline, tab or other control character (it would start a new line in ${what}): write it on one line`
    : undefined;
}

/**
 * Characters AD refuses in a group's sAMAccountName, and that would change
 * the meaning of a line here: "," separates sssd's simple_allow_groups, "["
 * and "]" open an sssd.conf section, ":" separates the group database, "="
 * and the rest are sudoers or LDAP filter syntax. "@" stays: name@domain is
 * how sssd names groups with fully qualified names.
 */
const GROUP_FORBIDDEN = /["/\\[\]:;|=,+*?<>]/;

/** A group name as sssd.conf, sudoers and `getent group` take it. */
export function groupNameProblem(name: string): string | undefined {
  const control = controlCharProblem(name, 'sssd.conf and sudoers');
  if (control) return control;
  const bad = GROUP_FORBIDDEN.exec(name);
  if (bad)
    return `must not contain "${bad[0]}" (AD does not allow " / \\ [ ] : ; | = , + * ? < > in a group name, and in sssd.conf or sudoers it would change the line): write the group's name as AD shows it, one group per list item`;
  if (name.trim() !== name) return 'must not start or end with a space (sssd.conf drops it): remove the spaces around the name';
  if (/^\d+$/.test(name)) return 'must not be only digits (NSS reads a number as a gid): write the group name';
  return undefined;
}

/** Trees no mount or workspace may sit in: the OS, its configuration, kernel file systems, root's home. */
const SYSTEM_TREES = [
  '/bin',
  '/boot',
  '/dev',
  '/etc',
  '/lib',
  '/lib32',
  '/lib64',
  '/libx32',
  '/proc',
  '/root',
  '/run',
  '/sbin',
  '/sys',
  '/usr',
  '/var/lib/dsvm-agent',
];
/** Directories that are fine to hold a workspace below them, never to be one: a mount there hides what they hold. */
const SYSTEM_DIRS = [
  '/',
  '/home',
  '/var',
  '/var/lib',
  '/var/log',
  '/var/tmp',
  '/var/cache',
  '/tmp',
  '/opt',
  '/srv',
  '/mnt',
  '/media',
  '/data',
];

const within = (p: string, tree: string): boolean => p === tree || p.startsWith(`${tree}/`);

/** The path as the kernel resolves its spelling: "//home/" is /home. */
export function normalizeAbsolute(p: string): string {
  const n = path.posix.normalize(p);
  return n.length > 1 ? n.replace(/\/+$/, '') : n;
}

/**
 * A directory the agent mounts a share on or fills with user folders
 * (share.mountPoint, workspace.root). A mount on / renders the unit "-.mount"
 * (the root file system's own); one on /home hides every home; one in /etc
 * or /usr hides the system.
 */
export function systemDirProblem(p: string): string | undefined {
  const n = normalizeAbsolute(p);
  const tree = SYSTEM_TREES.find((t) => within(n, t));
  if (tree)
    return `must not be in ${tree} (a system directory: a mount or user folders there would hide or change the system): use a directory of its own, e.g. /data/workspace`;
  if (SYSTEM_DIRS.includes(n))
    return `must not be ${n} itself (a mount there hides everything it holds): use a directory below it of its own, e.g. /data/workspace`;
  return undefined;
}

/** Where node-exporter's textfile collector looks, the agent's state, and runtime files: the daemon replaces the file every few seconds. */
const TEXTFILE_TREES = ['/var/lib/prometheus', '/var/lib/node_exporter', '/var/lib/dsvm-agent', '/run'];

/** health.metricsTextfile: replaced every few seconds, so never a file anything else owns. */
export function metricsTextfileProblem(p: string): string | undefined {
  const n = normalizeAbsolute(p);
  if (!TEXTFILE_TREES.some((t) => n.startsWith(`${t}/`)))
    return `must be under ${TEXTFILE_TREES.map((t) => `${t}/`).join(', ')} (the daemon replaces this file every few seconds, so any other file there would be destroyed): use e.g. /var/lib/prometheus/node-exporter/dsvm-agent.prom`;
  if (!n.endsWith('.prom'))
    return "must end in .prom (the only files node-exporter's textfile collector reads): use e.g. /var/lib/prometheus/node-exporter/dsvm-agent.prom";
  return undefined;
}

/** share.dirMode / fileMode: the bits of o+w. */
export function worldWritableProblem(mode: string): string | undefined {
  const other = Number.parseInt(mode.slice(-1), 8);
  return (other & 2) !== 0
    ? `must not be world-writable (every local user could delete or replace other users' notebooks): drop the "other" write bit, e.g. "0770" or "0775"`
    : undefined;
}

/** workspace.minUid: uids below this are system accounts on Debian and Ubuntu (SYS_UID_MAX 999 in /etc/login.defs). */
export const MIN_USER_UID = 1000;

/**
 * A check's schedule as the daemon's scheduler (croner) parses it: 5 or 6
 * fields, seconds first when 6. A paused job arms no timer; it only parses.
 */
export function cronPatternProblem(pattern: string): string | undefined {
  try {
    new Cron(pattern, { paused: true }).stop();
    return undefined;
  } catch (err) {
    const why = err instanceof Error ? err.message.replace(/^CronPattern: /, '') : String(err);
    return `is not a valid cron schedule (${why}): write 5 or 6 fields, seconds first when 6, e.g. "*/30 * * * * *" (in quotes)`;
  }
}

/**
 * The [domain/...] options of sssd.conf the agent renders itself, each with
 * the config key that sets it: domain.sssdOptions may not set them, or the
 * file would carry two values of one option (sssd keeps the last one, so the
 * agent's own checks would read one value and sssd act on another).
 */
export const AGENT_SSSD_OPTIONS: Readonly<Record<string, string>> = {
  id_provider: 'the agent joins with the AD provider only',
  auth_provider: 'the agent joins with the AD provider only',
  chpass_provider: 'the agent joins with the AD provider only',
  access_provider: 'use domain.allowGroups and domain.denyGroups',
  simple_allow_groups: 'use domain.allowGroups (and domain.sudoGroups)',
  simple_deny_groups: 'use domain.denyGroups',
  simple_allow_users: 'use domain.allowGroups',
  simple_deny_users: 'use domain.denyGroups',
  ad_domain: 'use domain.name',
  krb5_realm: 'use domain.name',
  ad_hostname: 'the agent sets it from the computer name (domain.computerName)',
  ldap_sasl_authid: 'the agent sets it from the computer name (domain.computerName)',
  realmd_tags: 'the agent sets it for realm list',
  use_fully_qualified_names: 'use domain.fullyQualifiedNames',
  fallback_homedir: 'use domain.homeTemplate',
  default_shell: 'use domain.shell',
  ldap_id_mapping: 'use domain.idMapping',
  cache_credentials: 'the agent keeps it on so logins work while the DC is briefly away',
  krb5_store_password_if_offline: 'the agent keeps it on so logins work while the DC is briefly away',
  ad_maximum_machine_account_password_age: 'sssd renews the machine password every 30 days, which the sweep relies on',
  dyndns_update: 'use domain.dnsUpdate',
};

/** An sssd option name as sssd.conf takes it (lower case, digits, "_"): nothing that opens a section or ends the key. */
export function sssdOptionNameProblem(name: string): string | undefined {
  if (!/^[a-z][a-z0-9_]*$/.test(name))
    return 'is not an sssd option name: use the name as sssd.conf(5) and sssd-ad(5) spell it, lower case with "_", e.g. ldap_referrals';
  const why = AGENT_SSSD_OPTIONS[name];
  if (why) return `is set by the agent itself: remove it from domain.sssdOptions (${why})`;
  return undefined;
}

/**
 * An sssd option value. It is written after "name = " on a line of its
 * own, so only a line break could start another option or a [section]: a
 * bracket inside a value is not a section (re_expression's character
 * classes need them). sssd strips the spaces around a value, so a value
 * that starts or ends with one would not mean what it says.
 */
export function sssdOptionValueProblem(value: string): string | undefined {
  const control = controlCharProblem(value, 'sssd.conf');
  if (control) return control;
  if (value.trim() !== value) return 'must not start or end with a space (sssd drops it): remove the spaces';
  if (value === '') return "is empty: write a value, or remove the option to keep sssd's default";
  return undefined;
}
