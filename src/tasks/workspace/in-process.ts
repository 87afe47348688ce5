import { readFileSync } from 'node:fs';
import { lstat, readlink } from 'node:fs/promises';
import { unescapeMountinfo, type UserLinksPlan } from './plan.js';
import { settleWithin } from '../../agent/deadline.js';

/**
 * The repeated-login checks done inside the daemon, with no child process:
 * read-only metadata calls only (lstat, readlink: they never follow the
 * final link and never write), and only where a call cannot hang the
 * daemon: on a local filesystem (read from /proc/self/mountinfo), on a
 * network filesystem only when the daemon's own share probe found it
 * answering (`networkOk`), and never while an earlier in-process check is
 * still out after STUCK_MS. Why: docs/login.md (The fast path).
 *
 * `undefined` means "not checked here": the caller uses its child processes.
 */
export const STUCK_MS = 250;

/** Filesystem types whose calls can hang on the network (or on a user-space server). */
const REMOTE = /^(cifs|smb3|smbfs|nfs|nfs4|ceph|glusterfs|9p|afs|lustre|gpfs|beegfs|orangefs|ocfs2|gfs2|davfs|fuse(\..+)?|fuseblk)$/;

/** The filesystem type of the mount that holds `file` (longest mount point prefix), from mountinfo text. */
export function fsTypeAt(mountinfo: string, file: string): string | undefined {
  let best: { point: string; type: string } | undefined;
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const f = line.slice(0, sep).split(' ');
    const point = unescapeMountinfo(f[4] ?? '');
    const type = line.slice(sep + 3).split(' ')[0] ?? '';
    if (!point.startsWith('/') || !type) continue;
    const under = point === '/' || file === point || file.startsWith(`${point}/`);
    // Later lines win on an equal mount point: they are mounted on top.
    if (under && (!best || point.length >= best.point.length)) best = { point, type };
  }
  return best?.type;
}

export function isRemoteFs(type: string | undefined): boolean {
  return type === undefined || REMOTE.test(type);
}

export class InProcessChecks {
  /** In-process checks that outlived STUCK_MS and have not returned yet. */
  private outstanding = 0;

  constructor(private readonly mountinfoFile: string) {}

  /** True while an earlier check is stuck: callers use children. */
  get suspect(): boolean {
    return this.outstanding > 0;
  }

  /**
   * Both share folders are real directories (lstat: a symlink planted in
   * their place is not "in place"). Same answer as `stat -c %F` in a child.
   */
  shareFolders(plan: UserLinksPlan, networkOk: boolean): Promise<boolean | undefined> {
    return this.attempt([plan.userDir], networkOk, async () => {
      const [a, b] = await Promise.all([lstat(plan.userDir), lstat(plan.notebooksDir)]);
      return a.isDirectory() && b.isDirectory();
    });
  }

  /**
   * The $HOME link is in place: every folder between $HOME and the link is
   * a real folder owned by the user (so root's lookup walks the same path
   * the user's does, through nothing the user could point elsewhere), and the
   * link is the user's own symlink with exactly the planned target.
   */
  homeLink(plan: UserLinksPlan): Promise<boolean | undefined> {
    return this.attempt([plan.home], false, async () => {
      let dir = plan.home;
      for (const part of plan.homeDirs) {
        dir = `${dir}/${part}`;
        const st = await lstat(dir);
        if (!st.isDirectory() || st.uid !== plan.account.uid) return false;
      }
      const link = `${plan.home}/${plan.homeLink}`;
      const st = await lstat(link);
      if (!st.isSymbolicLink() || st.uid !== plan.account.uid) return false;
      return (await readlink(link)) === plan.linkTarget;
    });
  }

  /** Run `check` here if it is safe to; undefined when the caller must use a child instead. */
  async attempt(files: string[], networkOk: boolean, check: () => Promise<boolean>): Promise<boolean | undefined> {
    if (this.outstanding > 0) return undefined;
    // Synchronous on purpose: mountinfo is generated from kernel memory and
    // never blocks, and this skips a thread-pool round trip per login.
    let info: string;
    try {
      info = readFileSync(this.mountinfoFile, 'utf8');
    } catch {
      return undefined;
    }
    if (!networkOk && files.some((f) => isRemoteFs(fsTypeAt(info, f)))) return undefined;
    const work = check().catch(() => false);
    const first = await settleWithin(work, STUCK_MS, () => 'late' as const);
    if (first !== 'late') return first;
    this.outstanding++;
    void work.finally(() => this.outstanding--);
    return undefined;
  }
}
