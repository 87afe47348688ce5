import { chmod, mkdir, readFile, rm, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import path from 'node:path';
import { readIfExists, writeFileAtomic } from '../../agent/fsutil.js';
import type { TaskContext } from '../../agent/task.js';
import { permanent } from '../../agent/errors.js';
import { summarize } from '../../agent/runner.js';
import {
  addSssToNsswitch,
  MKHOMEDIR_PROFILE,
  renderKrb5Block,
  renderMkhomedirProfile,
  renderRealmdBlock,
  renderSshdDropIn,
  renderSssdConf,
  renderSudoers,
  setKrb5Block,
  SSHD_DROP_IN,
  type JoinFacts,
} from './render.js';
import { setMarkedBlock } from '../../agent/fsutil.js';

/** One file the join manages: its wanted content (undefined: must not exist) and mode. */
export interface ManagedFile {
  /** Short name for plan output and logs. */
  label: string;
  path: string;
  content: string | undefined;
  /** The mode the agent writes. */
  mode: number;
  /**
   * Other modes that are just as good, because another package's own tool
   * sets them (see {@link SSSD_ACCEPTED}). Without them the check right after
   * the agent's own apply sees that tool's change and never converges.
   */
  alsoModes?: readonly number[];
  /** Group names, besides the agent's own group, that may own the file (same reason). */
  alsoGroups?: readonly string[];
}

/**
 * What sssd's own unit does to /etc/sssd before every start: Debian 13's
 * sssd 2.10 (and upstream's unit since 2.9, which Ubuntu 24.04 ships) runs
 * `chown -R root:root /etc/sssd` (`root:sssd` where sssd is built to run as
 * the sssd user) and `chmod -R g+r /etc/sssd`. The agent writes 0600 root:root,
 * which every sssd accepts (older ones refuse anything else), and accepts the
 * unit's 0640 with group root or sssd: still no world access, no group write.
 */
export const SSSD_ACCEPTED = { alsoModes: [0o640], alsoGroups: ['sssd'] } as const;

/** What the files should look like, computed from what is on disk now (for the files the agent shares). */
export async function desiredFiles(ctx: TaskContext, facts: JoinFacts): Promise<{ files: ManagedFile[]; nsswitchAdded: string[] }> {
  const d = ctx.cfg.domain;
  const p = ctx.paths;
  const krb5 = setKrb5Block(await readIfExists(p.krb5Conf), renderKrb5Block(facts));
  const ns = addSssToNsswitch((await readIfExists(p.nsswitchConf)) ?? '');
  const realmd = setMarkedBlock((await readIfExists(p.realmdConf)) ?? '', renderRealmdBlock(d, facts));
  const files: ManagedFile[] = [
    { label: 'sssd.conf', path: p.sssdConf, content: renderSssdConf(d, facts), mode: 0o600, ...SSSD_ACCEPTED },
    // The others have one exact mode: no package's unit or tool rewrites their
    // mode or owner. krb5.conf, nsswitch.conf and realmd.conf are edited in
    // place by admins and their packages' maintainer scripts (content, which
    // the marked blocks handle); sshd reads its drop-ins, visudo and sudo
    // only check the sudoers drop-in (sudo refuses a world-writable one);
    // pam-auth-update reads the profile and writes common-* files the agent
    // does not manage; systemd only reads the unit drop-in.
    { label: 'krb5.conf', path: p.krb5Conf, content: krb5, mode: 0o644 },
    { label: 'nsswitch.conf', path: p.nsswitchConf, content: ns.text, mode: 0o644 },
    { label: 'realmd.conf', path: p.realmdConf, content: realmd, mode: 0o644 },
    { label: 'sudoers drop-in', path: sudoersFile(ctx), content: renderSudoers(d, facts), mode: 0o440 },
    { label: 'sshd drop-in', path: path.join(p.sshdConfigDir, SSHD_DROP_IN), content: renderSshdDropIn(), mode: 0o644 },
    { label: 'pam profile', path: path.join(p.pamConfigsDir, MKHOMEDIR_PROFILE), content: renderMkhomedirProfile(), mode: 0o644 },
    { label: 'sssd unit drop-in', path: sssdDropInFile(ctx), content: SSSD_DROP_IN_CONTENT, mode: 0o644 },
  ];
  return { files, nsswitchAdded: ns.added };
}

export const sudoersFile = (ctx: TaskContext): string => path.join(ctx.paths.sudoersDir, 'dsvm-agent');

/** Drop-in ordering sssd after the network: see {@link SSSD_DROP_IN_CONTENT}. */
export const sssdDropInFile = (ctx: TaskContext): string => path.join(ctx.paths.systemdUnitDir, 'sssd.service.d', '10-dsvm-agent.conf');

/**
 * Debian's sssd.service starts before the network is up; sssd then comes up
 * offline and retries only after its offline timeout, so a user with no
 * cached credentials cannot log in for the first minutes after a reboot
 * (seen in the VM test: pam_sss "Permission denied" with no request at the DC).
 */
export const SSSD_DROP_IN_CONTENT = `# Written by dsvm-agent: start sssd once the network is up, so it reaches the
# domain controller at boot instead of starting offline.
[Unit]
Wants=network-online.target
After=network-online.target
`;

/** A managed file that differs, with what differs, for plan output and the re-check after apply. */
export type DifferingFile = ManagedFile & { differs: string };

/** Who the agent is when it writes: the owner and group of every file it writes (root on a VM). */
export interface Writer {
  uid: number;
  gid: number;
  /** gid of a group name from /etc/group, when the system has it. */
  gidOf(name: string): number | undefined;
}

const octal = (mode: number): string => `0${(mode & 0o777).toString(8).padStart(3, '0')}`;

/**
 * What differs between a file on disk and what is wanted: the attribute
 * and the value on each side (`mode 0644, want 0600`), undefined when the
 * file is as wanted. Content is described by size and first differing
 * line, never quoted: the value could be anything a person put there.
 */
export function fileDifference(
  f: ManagedFile,
  current: { content: string; st: Pick<Stats, 'mode' | 'uid' | 'gid'> } | undefined,
  writer: Writer,
): string | undefined {
  if (current === undefined) return f.content === undefined ? undefined : 'missing';
  if (f.content === undefined) return 'exists, want it removed';
  if (current.content !== f.content) {
    const have = current.content.split('\n');
    const want = f.content.split('\n');
    let line = 0;
    while (line < have.length && have[line] === want[line]) line++;
    return `content ${Buffer.byteLength(current.content)} bytes, want ${Buffer.byteLength(f.content)} bytes (first difference at line ${line + 1})`;
  }
  const mode = current.st.mode & 0o777;
  const modes = [f.mode, ...(f.alsoModes ?? [])];
  if (!modes.includes(mode)) return `mode ${octal(mode)}, want ${modes.map(octal).join(' or ')}`;
  if (current.st.uid !== writer.uid) return `owner uid ${current.st.uid}, want ${writer.uid}`;
  const groups = [writer.gid, ...(f.alsoGroups ?? []).flatMap((g) => writer.gidOf(g) ?? [])];
  if (!groups.includes(current.st.gid)) return `group gid ${current.st.gid}, want ${groups.join(' or ')}`;
  return undefined;
}

/** Files whose content, mode, owner or group differs from what is wanted, each with what differs. */
export async function differingFiles(files: ManagedFile[], writer: Writer): Promise<DifferingFile[]> {
  const out: DifferingFile[] = [];
  for (const f of files) {
    const content = await readIfExists(f.path);
    const current = content === undefined ? undefined : { content, st: await stat(f.path) };
    const differs = fileDifference(f, current, writer);
    if (differs !== undefined) out.push({ ...f, differs });
  }
  return out;
}

/**
 * The agent's own uid and gid (it writes every file itself: atomic
 * rename, so a rewritten file is owned by the writer), and group names
 * from `groupFile` (/etc/group under the paths root).
 */
export async function currentWriter(groupFile: string): Promise<Writer> {
  const text = (await readIfExists(groupFile)) ?? '';
  const gids = new Map<string, number>();
  for (const line of text.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name && gid && /^\d+$/.test(gid)) gids.set(name, Number(gid));
  }
  return { uid: process.geteuid?.() ?? 0, gid: process.getegid?.() ?? 0, gidOf: (name) => gids.get(name) };
}

/** A file's state before the agent touched it, to put it back on failure. */
interface Backup {
  path: string;
  content: Buffer | undefined;
  mode: number;
}

/** Records what was there before each write; `restore` puts every file back as found. */
export class FileTransaction {
  private readonly backups: Backup[] = [];

  /** Remember a path's current state (once) before changing it. */
  async remember(file: string): Promise<void> {
    if (this.backups.some((b) => b.path === file)) return;
    try {
      const [content, st] = await Promise.all([readFile(file), stat(file)]);
      this.backups.push({ path: file, content, mode: st.mode & 0o7777 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      this.backups.push({ path: file, content: undefined, mode: 0 });
    }
  }

  async write(f: ManagedFile): Promise<void> {
    await this.remember(f.path);
    if (f.content === undefined) {
      await rm(f.path, { force: true });
      return;
    }
    await mkdir(path.dirname(f.path), { recursive: true });
    await writeFileAtomic(f.path, f.content, { mode: f.mode });
    await chmod(f.path, f.mode);
  }

  async remove(file: string): Promise<void> {
    await this.remember(file);
    await rm(file, { force: true });
  }

  /** Put every remembered file back; returns the paths restored. Never throws: it runs while handling a failure. */
  async restore(): Promise<string[]> {
    const done: string[] = [];
    for (const b of [...this.backups].reverse()) {
      try {
        if (b.content === undefined) await rm(b.path, { force: true });
        else await writeFileAtomic(b.path, b.content, { mode: b.mode });
        done.push(b.path);
      } catch {
        /* keep restoring the others */
      }
    }
    return done;
  }
}

/** Check a sudoers candidate with `visudo -cf` before it can take effect; a broken sudoers file locks out every admin. */
export async function validateSudoers(ctx: TaskContext, content: string): Promise<void> {
  const dir = path.join(ctx.paths.stateDir, 'tmp');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const candidate = path.join(dir, 'sudoers.candidate');
  await writeFileAtomic(candidate, content, { mode: 0o440 });
  try {
    const r = await ctx.run({ file: 'visudo', args: ['-cf', candidate], timeoutMs: 15_000 });
    if (r.exitCode !== 0) {
      throw permanent(`sudoers drop-in for domain.sudoGroups is invalid: ${summarize(r)}`, {
        reason: 'sudoers-invalid',
        fix: 'check the group names in domain.sudoGroups',
      });
    }
  } finally {
    await rm(candidate, { force: true });
  }
}

/** What sssctl prints about a candidate: its validator and merge lines, not the counts. */
function sssctlFindings(stdout: string, stderr: string): string {
  const lines = `${stdout}\n${stderr}`
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !/^(Issues identified by validators|Messages generated during|Used configuration snippet files):/.test(l));
  return lines.join('; ') || 'no reason given';
}

/**
 * Check an sssd.conf candidate with the installed sssd's own rules
 * (`sssctl config-check`, which reads sssd's cfg_rules.ini) before it
 * replaces the running one: an option this sssd does not know (a typo in
 * domain.sssdOptions, or one of a newer release) would otherwise be found
 * only when sssd is restarted, with logins already switched over. sssctl
 * also merges the snippets of conf.d next to the file: the candidate is
 * checked with the real /etc/sssd/conf.d when it exists, as sssd will read it.
 */
export async function validateSssdConf(ctx: TaskContext, content: string): Promise<void> {
  const dir = path.join(ctx.paths.stateDir, 'tmp');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const candidate = path.join(dir, 'sssd.conf.candidate');
  const realSnippets = path.join(path.dirname(ctx.paths.sssdConf), 'conf.d');
  const emptySnippets = path.join(dir, 'sssd-conf.d');
  const snippets = (await stat(realSnippets).catch(() => undefined))?.isDirectory() ? realSnippets : emptySnippets;
  if (snippets === emptySnippets) await mkdir(emptySnippets, { recursive: true, mode: 0o700 });
  // sssctl refuses a file that is not root-owned 0600, as sssd does.
  await writeFileAtomic(candidate, content, { mode: 0o600 });
  try {
    const r = await ctx.run({ file: 'sssctl', args: ['config-check', '-c', candidate, '-s', snippets], timeoutMs: 15_000 });
    if (r.startError)
      throw permanent(`cannot check sssd.conf: sssctl did not start (${r.startError})`, {
        reason: 'sssctl-missing',
        fix: 'install sssd-tools (the package depends on it)',
      });
    if (r.exitCode !== 0)
      throw permanent(`sssd.conf would be refused by this sssd (sssctl config-check): ${sssctlFindings(r.stdout, r.stderr)}`, {
        reason: 'sssd-conf-invalid',
        fix: 'remove or correct the option sssctl names in domain.sssdOptions (sssd.conf(5) and sssd-ad(5) of the installed sssd list what it accepts)',
      });
  } finally {
    await rm(candidate, { force: true });
    await rm(emptySnippets, { recursive: true, force: true });
  }
}
