import path from 'node:path';
import { summarize } from '../../agent/runner.js';
import type { TaskContext } from '../../agent/task.js';
import type { DesiredShare } from './desired.js';
import type { AzureHttpOptions } from './key.js';
import { ensureShareFolderRest } from './rest.js';

/*
 * workspace.root below the mount point (/data/workspace/users on a share at
 * /data/workspace) is a folder of the share. A login never creates it: with
 * the share not mounted it would land on the local disk and hide behind the
 * share later. So the share task makes it, once the share is there, through
 * Files REST with the key (key mode only: NFS and Kerberos give the agent no
 * key to sign with).
 */

/** workspace.root relative to the mount point when strictly below it ("users"), else undefined. */
export function workspaceRootInShare(mountPoint: string, root: string): string | undefined {
  const rel = path.posix.relative(path.posix.normalize(mountPoint), path.posix.normalize(root));
  if (rel === '' || rel === '..' || rel.startsWith('../') || path.posix.isAbsolute(rel)) return undefined;
  return rel;
}

const STAT_TIMEOUT_MS = 5_000;

/**
 * Whether the folder is on the mounted share: `stat` in a child with a
 * deadline, so a share that stopped answering cannot hang `check`. Anything
 * but a clear answer comes back as a warning.
 */
export async function rootFolderOnMount(
  ctx: TaskContext,
  d: DesiredShare,
  rel: string,
): Promise<{ state: 'present' | 'missing' } | { state: 'unknown'; warning: string }> {
  const root = path.posix.join(d.mountPoint, rel);
  const r = await ctx.run({ file: 'stat', args: ['-c', '%F', '--', path.join(d.realMountPoint, rel)], timeoutMs: STAT_TIMEOUT_MS });
  if (r.exitCode === 0 && r.stdout.trim() === 'directory') return { state: 'present' };
  if (r.exitCode === 0)
    return {
      state: 'unknown',
      warning: `workspace.root ${root} is ${r.stdout.trim()} on the share, not a folder: logins will fail until it is a folder`,
    };
  if (!r.timedOut && /No such file or directory/i.test(r.stderr)) return { state: 'missing' };
  return { state: 'unknown', warning: `could not check workspace.root ${root} on the share (${summarize(r)})` };
}

/**
 * Make the folder (and its parents) through Files REST, on the mounted
 * share; idempotent. Then wait until the mount sees it: the `stat` that
 * found it missing left a negative dentry, which CIFS trusts for up to a
 * second (cifs_d_revalidate), and the check after `apply` must not read it.
 */
export async function ensureWorkspaceRoot(ctx: TaskContext, d: DesiredShare, rel: string, opts: AzureHttpOptions): Promise<string[]> {
  const created = await ensureShareFolderRest(ctx, rel, opts);
  if (created.length > 0) ctx.log.child('share-mount').info(`made ${created.join(', ')} in the share for workspace.root`);
  for (let i = 0; i < 8; i++) {
    if ((await rootFolderOnMount(ctx, d, rel)).state === 'present') break;
    await ctx.clock.sleep(250);
  }
  return created;
}
