import { readFile } from 'node:fs/promises';
import { transient } from '../../agent/errors.js';
import { summarize } from '../../agent/runner.js';
import type { TaskContext } from '../../agent/task.js';
import type { DesiredShare } from './desired.js';
import { mountFailure, unitLog } from './diagnose.js';
import { decideMount, FINDMNT_ARGS, parseFindmnt, parseMountinfo, type MountDecision, type MountEntry } from './findmnt.js';
import { fsType } from './options.js';
import { MOUNT_TIMEOUT_SEC } from './units.js';

/**
 * The mount table through `findmnt -J` (what the task and `plan` use). With
 * no path argument findmnt only reads mountinfo: it never stats the share,
 * so a hung server cannot hang it.
 */
export async function readMountTable(ctx: TaskContext): Promise<MountEntry[]> {
  const r = await ctx.run({ file: 'findmnt', args: [...FINDMNT_ARGS], timeoutMs: 10_000 });
  if (r.exitCode !== 0)
    throw transient(`share: cannot read the mount table (findmnt: ${summarize(r)})`, {
      fix: 'install util-linux (findmnt)',
      reason: 'share-findmnt',
    });
  return parseFindmnt(r.stdout);
}

/** The mount table straight from /proc/self/mountinfo: no child process, never touches the share. */
export async function readMountinfo(ctx: TaskContext): Promise<MountEntry[]> {
  return parseMountinfo(await readFile(ctx.paths.procMounts, 'utf8'));
}

export function decide(entries: MountEntry[], d: DesiredShare): MountDecision {
  return decideMount(entries, { target: d.realMountPoint, source: d.source, type: d.share.type });
}

const diag = (d: DesiredShare) => ({ share: d.share, mode: d.mode, source: d.source, mountPoint: d.mountPoint });

/**
 * Mount now. Under systemd the unit does it (so boot and `systemctl status`
 * agree with us); without systemd (containers, the lab) mount(8) runs with
 * the same options: still the credentials file, never the key in argv.
 */
export async function mountNow(ctx: TaskContext, d: DesiredShare): Promise<void> {
  if (ctx.services.kind === 'systemd') {
    try {
      await ctx.services.start(d.units.entry);
    } catch (err) {
      const journal = await unitLog(ctx, d.units.mount).catch(() => '');
      throw mountFailure(journal || (err as Error).message, diag(d));
    }
    return;
  }
  const r = await ctx.run({
    file: 'mount',
    args: ['-t', fsType(d.mode), '-o', d.options.join(','), d.source, d.realMountPoint],
    timeoutMs: MOUNT_TIMEOUT_SEC * 1000,
  });
  if (r.exitCode !== 0) throw mountFailure(r.timedOut ? `timed out after ${MOUNT_TIMEOUT_SEC} s` : `${r.stderr}\n${r.stdout}`, diag(d));
}

/**
 * umount(8) where the mount lives. Under systemd the daemon runs in a mount
 * namespace of its own (the unit's ProtectKernelTunables= and friends), a
 * slave of the host's: an unmount made there would detach the share for the
 * agent alone while users keep the old mount. systemd-run hands it to PID 1,
 * whose namespace is the users'; the change propagates back into ours. PID 1
 * also ends a umount stuck on a dead server (RuntimeMaxSec) if our own
 * timeout has to give up on waiting for it.
 */
export function umountCommand(ctx: TaskContext, args: string[]): { file: string; args: string[]; timeoutMs: number } {
  if (ctx.services.kind !== 'systemd') return { file: 'umount', args, timeoutMs: 30_000 };
  return {
    file: 'systemd-run',
    args: ['--quiet', '--wait', '--pipe', '--collect', '--service-type=exec', '-p', 'RuntimeMaxSec=25', '--', 'umount', ...args],
    timeoutMs: 30_000,
  };
}

/**
 * Unmount. A busy or dead share refuses a plain umount; `lazy` then detaches
 * it (processes keep their open files until they close them), which is
 * right for deprovision and termination, never for a routine remount.
 */
export async function unmountNow(
  ctx: TaskContext,
  d: { realMountPoint: string; units: { mount: string; automount?: string | undefined } },
  opts: { lazy: boolean },
): Promise<void> {
  const still = async (): Promise<boolean> => (await readMountTable(ctx)).some((e) => e.target === d.realMountPoint);
  if (ctx.services.kind === 'systemd') {
    if (d.units.automount) await ctx.services.stop(d.units.automount).catch(() => undefined);
    await ctx.services.stop(d.units.mount).catch(() => undefined);
  }
  for (let i = 0; i < 3 && (await still()); i++) {
    const r = await ctx.run(umountCommand(ctx, [d.realMountPoint]));
    if (r.exitCode === 0) continue;
    if (!opts.lazy)
      throw transient(`share: cannot unmount ${d.realMountPoint}: ${summarize(r)}`, {
        fix: `close what uses it (fuser -vm ${d.realMountPoint}) and retry`,
        reason: 'share-busy',
      });
    const lazy = await ctx.run(umountCommand(ctx, ['-l', d.realMountPoint]));
    if (lazy.exitCode !== 0) throw transient(`share: cannot unmount ${d.realMountPoint}: ${summarize(lazy)}`, { reason: 'share-busy' });
  }
}
