import { chmod, mkdir, readFile, rm, stat } from 'node:fs/promises';
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
  mode: number;
}

/** What the files should look like, computed from what is on disk now (for the files the agent shares). */
export async function desiredFiles(ctx: TaskContext, facts: JoinFacts): Promise<{ files: ManagedFile[]; nsswitchAdded: string[] }> {
  const d = ctx.cfg.domain;
  const p = ctx.paths;
  const krb5 = setKrb5Block(await readIfExists(p.krb5Conf), renderKrb5Block(facts));
  const ns = addSssToNsswitch((await readIfExists(p.nsswitchConf)) ?? '');
  const realmd = setMarkedBlock((await readIfExists(p.realmdConf)) ?? '', renderRealmdBlock(d, facts));
  const files: ManagedFile[] = [
    { label: 'sssd.conf', path: p.sssdConf, content: renderSssdConf(d, facts), mode: 0o600 },
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

/** Files whose content or mode differs from what is wanted. */
export async function differingFiles(files: ManagedFile[]): Promise<ManagedFile[]> {
  const out: ManagedFile[] = [];
  for (const f of files) {
    const current = await readIfExists(f.path);
    if (current !== f.content) {
      out.push(f);
      continue;
    }
    if (current !== undefined && ((await stat(f.path)).mode & 0o777) !== f.mode) out.push(f);
  }
  return out;
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
