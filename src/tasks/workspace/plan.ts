import path from 'node:path';
import type { Config } from '../../agent/config-schema.js';
import { systemDirProblem } from '../../agent/config-values.js';
import type { Paths } from '../../agent/paths.js';
import { checkName, folderNameFor, type NameRefusal } from './names.js';

/** An account as NSS returned it (`getent passwd`): the only identity the agent acts on. */
export interface Account {
  /** Canonical name (pw_name), which may differ from what was typed (case, DOMAIN\ prefix). */
  name: string;
  uid: number;
  gid: number;
  /** pw_dir, as a system path (not yet under a test root). */
  home: string;
}

/** workspace.root is a system directory: nothing is made there for anyone. */
export interface RootRefusal {
  ok: false;
  reason: 'bad-root';
  message: string;
}

/** Everything one login should make, computed without touching the system. */
export interface UserLinksPlan {
  account: Account;
  /** The user's folder name on the share. */
  folder: string;
  /** `<root>/<folder>` and `<root>/<folder>/<notebooks>`, under the path prefix. */
  userDir: string;
  notebooksDir: string;
  /** $HOME under the path prefix. */
  home: string;
  /** Folders between $HOME and the link, relative to $HOME (e.g. ["notebooks"]). */
  homeDirs: string[];
  /** The link, relative to $HOME (e.g. "notebooks/remote"). */
  homeLink: string;
  /** What the link must point to: the notebooks folder as the system sees it. */
  linkTarget: string;
}

/** Parse one `getent passwd` line; undefined when it is not a passwd entry. */
export function parsePasswdLine(line: string): Account | undefined {
  const f = line.replace(/\n$/, '').split(':');
  if (f.length !== 7) return undefined;
  const [name, , uid, gid, , home] = f as [string, string, string, string, string, string, string];
  if (!/^\d+$/.test(uid) || !/^\d+$/.test(gid) || !home.startsWith('/') || name === '') return undefined;
  return { name, uid: Number(uid), gid: Number(gid), home };
}

/**
 * Parse `id -G NAME`: the user's group ids, or undefined when the output is not
 * a list of numbers. Numbers, not names: `id -Gn` separates names with spaces,
 * so "AAD DC Administrators" never matched and "not dsvm-users" read as
 * "dsvm-users"; and two trusted domains may each have a "dsvm-users".
 */
export function parseGroupIds(stdout: string): number[] | undefined {
  const words = stdout.trim().split(/\s+/).filter(Boolean);
  if (words.length === 0 || !words.every((w) => /^\d+$/.test(w))) return undefined;
  return words.map(Number);
}

/**
 * The gids in `getent group A B ...` output (name:password:gid:members, one
 * line per group found). Group names cannot hold ':' (it is the field
 * separator of the group database) but may hold spaces.
 */
export function parseGroupEntryIds(stdout: string): number[] {
  const out: number[] = [];
  for (const line of stdout.split('\n')) {
    const f = line.split(':');
    if (f.length >= 4 && /^\d+$/.test(f[2] ?? '')) out.push(Number(f[2]));
  }
  return out;
}

/**
 * The names to resolve for the VM's login groups: domain.allowGroups plus the
 * sudo groups (admins log in too), as sssd's simple access provider is set up
 * by the join. With fully qualified names sssd knows groups only as
 * name@domain, so a bare configured name gets this domain's suffix, the
 * domain sssd.conf names. Empty: no group rule (every account NSS knows).
 */
export function loginGroupNames(cfg: Pick<Config, 'domain'>): string[] {
  if (cfg.domain.allowGroups.length === 0) return [];
  return asNssGroups(cfg, [...cfg.domain.allowGroups, ...cfg.domain.sudoGroups]);
}

/** domain.denyGroups as NSS names them (see loginGroupNames); their members never get a workspace. */
export function denyGroupNames(cfg: Pick<Config, 'domain'>): string[] {
  return asNssGroups(cfg, cfg.domain.denyGroups ?? []);
}

function asNssGroups(cfg: Pick<Config, 'domain'>, names: readonly string[]): string[] {
  const qualified = cfg.domain.fullyQualifiedNames
    ? names.map((g) => (g.includes('@') ? g : `${g}@${cfg.domain.name.toLowerCase()}`))
    : names;
  return [...new Set(qualified)];
}

/** Whether a user with group ids `userGids` is in one of the allowed groups (resolved to `allowedGids`). */
export function isAllowed(userGids: readonly number[], allowedGids: readonly number[]): boolean {
  const want = new Set(allowedGids);
  return userGids.some((g) => want.has(g));
}

/** Why a login does nothing for this account (a system account), or undefined. */
export function skipReason(account: Account, cfg: Pick<Config, 'workspace'>): string | undefined {
  if (account.uid < cfg.workspace.minUid) return `uid ${account.uid} is below workspace.minUid (${cfg.workspace.minUid}): a system account`;
  return undefined;
}

/**
 * The pure plan for one user: where the share folder goes, where the link
 * goes and what it points to. Refuses names that cannot be a folder.
 */
export function planUserLinks(
  account: Account,
  cfg: Pick<Config, 'workspace'>,
  paths: Pick<Paths, 'under'>,
): UserLinksPlan | NameRefusal | RootRefusal {
  const bad = checkName(account.name);
  if (bad) return bad;
  // The schema refuses it; the plan does too: root makes folders here for every user.
  const system = systemDirProblem(cfg.workspace.root);
  if (system) return { ok: false, reason: 'bad-root', message: `workspace.root ${cfg.workspace.root} ${system}` };
  const mapped = folderNameFor(account.name);
  if (!mapped.ok) return mapped;
  const root = paths.under(cfg.workspace.root);
  const userDir = path.join(root, mapped.folder);
  const notebooksDir = path.join(userDir, cfg.workspace.notebooks);
  const parts = cfg.workspace.homeLink.split('/');
  return {
    account,
    folder: mapped.folder,
    userDir,
    notebooksDir,
    home: paths.under(path.resolve('/', account.home)),
    homeDirs: parts.slice(0, -1),
    homeLink: cfg.workspace.homeLink,
    linkTarget: notebooksDir,
  };
}

/** True when `stat -c %F A B` says both are real directories (the share's fast path). */
export function bothDirectories(stdout: string): boolean {
  const lines = stdout.split('\n').filter(Boolean);
  return lines.length === 2 && lines.every((l) => l === 'directory');
}

/** Mount points listed in /proc/self/mountinfo (field 5, with the kernel's octal escapes decoded). */
export function mountPoints(mountinfo: string): Set<string> {
  const out = new Set<string>();
  for (const line of mountinfo.split('\n')) {
    const f = line.split(' ');
    if (f.length > 4 && f[4]) out.add(unescapeMountinfo(f[4]));
  }
  return out;
}

/** A mountinfo path field with the kernel's octal escapes (\040 for a space...) decoded. */
export function unescapeMountinfo(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}
