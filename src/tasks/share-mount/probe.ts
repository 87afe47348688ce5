import type { TaskContext } from '../../agent/task.js';
import { messageOf, permanent, transient } from '../../agent/errors.js';
import { readIfExists } from '../../agent/fsutil.js';
import { renderCredentials, writeCredentials } from './credentials.js';
import { desiredShare, normalizeMountPoint, requireShare, type DesiredShare } from './desired.js';
import { mountSource } from './endpoint.js';
import { decideMount } from './findmnt.js';
import { decide, readMountinfo, readMountTable, unmountNow } from './mount.js';
import { refreshStorageKey, type AzureHttpOptions } from './key.js';
import { mountOrRestore, verifyNewKey } from './remount.js';
import {
  closeOwnHandles,
  ensureShareFolderRest,
  localClientIdentity,
  shareUsageRest,
  type ClientIdentity,
  type ShareUsage,
} from './rest.js';
import { unitNames } from './units.js';

/** What the health check and the login path learn about the share. */
export interface ShareProbe {
  /** Our share is mounted at the mount point (from mountinfo). */
  mounted: boolean;
  /** It answered a statfs within the deadline. */
  responsive: boolean;
  /** Only systemd's automount trigger is there (Kerberos mode before first access). */
  automount?: boolean;
  source?: string;
  fstype?: string;
  /** One line for people: why it is (un)healthy. */
  reason: string;
  durationMs: number;
}

/** Whether our share is mounted, from /proc/self/mountinfo only: no child, no access to the share. */
export async function isMounted(ctx: TaskContext): Promise<boolean> {
  const share = requireShare(ctx);
  const target = ctx.paths.under(normalizeMountPoint(share.mountPoint));
  return decideMount(await readMountinfo(ctx), { target, source: mountSource(share), type: share.type }).state === 'mounted';
}

/**
 * Is the share mounted and answering? The statfs runs in a child with a
 * SIGKILL deadline (the runner's timeout): a process touching a dead CIFS
 * share can block for minutes, and that must be the child, never the
 * daemon or a login. statfs, unlike stat, always asks the server (the
 * attribute cache, actimeo=30, would answer a stat for a dead share).
 */
export async function probeShare(ctx: TaskContext, opts: { timeoutMs: number }): Promise<ShareProbe> {
  const started = ctx.clock.now();
  const share = requireShare(ctx);
  const target = ctx.paths.under(normalizeMountPoint(share.mountPoint));
  const entries = await readMountinfo(ctx);
  const decision = decideMount(entries, { target, source: mountSource(share), type: share.type });
  const elapsed = (): number => ctx.clock.now() - started;
  if (decision.state === 'not-mounted')
    return { mounted: false, responsive: false, reason: `nothing is mounted at ${share.mountPoint}`, durationMs: elapsed() };
  if (decision.state === 'other') {
    return {
      mounted: false,
      responsive: false,
      source: decision.entry.source,
      fstype: decision.entry.fstype,
      reason: `${decision.entry.source} (${decision.entry.fstype}) is mounted at ${share.mountPoint}, not the share`,
      durationMs: elapsed(),
    };
  }
  if (decision.state === 'automount-armed') {
    // Stat-ing it would trigger the mount; the first user access does that.
    return {
      mounted: false,
      responsive: false,
      automount: true,
      reason: `automount armed at ${share.mountPoint}: the share mounts on first access`,
      durationMs: elapsed(),
    };
  }
  const base = {
    mounted: true,
    source: decision.entry.source,
    fstype: decision.entry.fstype,
    ...(decision.automount ? { automount: true } : {}),
  };
  const r = await ctx.run({ file: 'stat', args: ['-f', '-c', '%T', target], timeoutMs: opts.timeoutMs });
  const durationMs = Math.max(elapsed(), r.durationMs);
  if (r.timedOut)
    return {
      ...base,
      responsive: false,
      reason: `the share did not answer within ${opts.timeoutMs} ms (server unreachable or hung)`,
      durationMs,
    };
  if (r.exitCode !== 0)
    return {
      ...base,
      responsive: false,
      reason: `statfs failed: ${(r.stderr || r.startError || '').trim().split('\n')[0] ?? ''}`,
      durationMs,
    };
  return { ...base, responsive: true, reason: `mounted from ${decision.entry.source}, answered in ${r.durationMs} ms`, durationMs };
}

/**
 * The daemon's repair for a share that is gone or stopped answering. Key
 * mode resolves the key again first (Key Vault, file or ARM, as provision
 * does; in the daemon through its Azure child), so a regenerated key reaches
 * the credentials file without a provision run: a changed key is checked
 * over Files REST and only then written. The units stay as they are on disk
 * (the task writes those). Never touches another filesystem at the mount
 * point: that is an error, so the repair is not recorded as done.
 */
export async function remountShare(ctx: TaskContext, opts: AzureHttpOptions = {}): Promise<void> {
  const d = await desiredShare(ctx);
  const decision = decide(await readMountTable(ctx), d);
  if (decision.state === 'other') {
    throw permanent(
      `share: ${decision.entry.source} (${decision.entry.fstype}) is mounted at ${d.mountPoint}, not the share; the repair never unmounts another filesystem`,
      {
        fix: `unmount it (umount ${d.mountPoint}) and remove whatever mounts it (fstab line, unit), then run dsvm-agent provision`,
        reason: 'share-mountpoint-busy',
      },
    );
  }
  const previous = d.mode === 'smb-key' ? await refreshCredentials(ctx, d, opts) : undefined;
  // Repair is called for a share that stopped answering: a plain umount would
  // hang or fail on it, so it is detached (processes stuck on the old mount
  // keep their handles; new accesses reach the fresh mount).
  if (decision.state === 'mounted' || decision.state === 'automount-armed') await unmountNow(ctx, d, { lazy: true });
  await mountOrRestore(ctx, d, previous);
}

/**
 * Resolve the key again and rewrite the credentials file only when it
 * changed (after Files REST accepted the new key). Returns the file it
 * replaced, to go back to if the mount refuses the new key.
 */
async function refreshCredentials(ctx: TaskContext, d: DesiredShare, opts: AzureHttpOptions): Promise<string | undefined> {
  const content = renderCredentials(d.share.account, await refreshStorageKey(ctx, opts));
  const current = await readIfExists(d.credentialsFile);
  if (current === content) return undefined;
  if (current !== undefined) {
    const w = await verifyNewKey(ctx, d, opts);
    if (w) ctx.log.child('share-mount').warn(w);
  }
  await writeCredentials(d.credentialsFile, content);
  ctx.log.child('share-mount').info(`${current === undefined ? 'wrote' : 'rewrote'} ${d.credentialsSystemFile}: the storage key changed`);
  return current;
}

/**
 * Usage against quota. SMB: Files REST with the key; NFS (no REST, no key):
 * statfs of the mount, which Azure answers with the share's quota as size.
 */
export async function shareUsage(ctx: TaskContext, opts: AzureHttpOptions & { timeoutMs?: number } = {}): Promise<ShareUsage> {
  const share = requireShare(ctx);
  if (share.type !== 'nfs') return shareUsageRest(ctx, opts);
  const target = ctx.paths.under(normalizeMountPoint(share.mountPoint));
  const r = await ctx.run({ file: 'stat', args: ['-f', '-c', '%S %b %f', target], timeoutMs: opts.timeoutMs ?? 5_000 });
  const [bsize, blocks, free] = r.stdout.trim().split(/\s+/).map(Number);
  if (r.exitCode !== 0 || !bsize || blocks === undefined || free === undefined)
    throw new Error(`share: statfs of ${share.mountPoint} failed: ${r.timedOut ? 'timed out' : r.stderr.trim()}`);
  return { usedBytes: (blocks - free) * bsize, quotaBytes: blocks * bsize };
}

/** Make `relPath` (and its parents) in the share through the REST API; returns the levels created. */
export async function ensureShareFolder(ctx: TaskContext, relPath: string, opts: AzureHttpOptions = {}): Promise<string[]> {
  return ensureShareFolderRest(ctx, relPath, opts);
}

/** What {@link closeHandlesAndUnmount} did. */
export interface TerminateResult {
  unmounted: boolean;
  closed: number;
  failed: number;
  /** Handles of other VMs, left open. */
  foreign: number;
  errors: string[];
}

/**
 * On scale-in (scheduled event Terminate): unmount first, so the kernel
 * flushes cached writes and closes its handles in order, then force-close
 * whatever handles of this VM the service still holds (durable handles
 * outlive a vanished client and would block other VMs' writes and locks).
 * Closing first would throw away writes still in the page cache. Only this
 * VM's handles are closed (see isOwnHandle). Best effort: every step runs,
 * errors are collected.
 */
export async function closeHandlesAndUnmount(
  ctx: TaskContext,
  opts: AzureHttpOptions & { identity?: ClientIdentity } = {},
): Promise<TerminateResult> {
  const share = requireShare(ctx);
  const result: TerminateResult = { unmounted: false, closed: 0, failed: 0, foreign: 0, errors: [] };
  const mountPoint = normalizeMountPoint(share.mountPoint);
  try {
    await unmountNow(ctx, { realMountPoint: ctx.paths.under(mountPoint), units: unitNames(mountPoint) }, { lazy: true });
    result.unmounted = true;
  } catch (err) {
    result.errors.push(messageOf(err));
  }
  if (share.type === 'smb' && share.key) {
    try {
      const r = await closeOwnHandles(ctx, opts.identity ?? localClientIdentity(ctx), opts);
      Object.assign(result, r);
    } catch (err) {
      result.errors.push(messageOf(err));
    }
  }
  // Every step ran; the caller (Terminate handling) still approves the event, but must see what failed.
  if (result.errors.length > 0) {
    throw transient(`share: on terminate: ${result.errors.join('; ')}`, { reason: 'share-terminate-incomplete' });
  }
  return result;
}
