import os from 'node:os';
import path from 'node:path';
import type { ShareConfig } from '../../agent/config-schema.js';
import { configError, transient } from '../../agent/errors.js';
import { summarize } from '../../agent/runner.js';
import type { TaskContext } from '../../agent/task.js';
import { credentialsPath, credentialsSystemPath } from './credentials.js';
import { mountSource } from './endpoint.js';
import { mountOptions, parseKernelRelease, shareMode, type ShareMode } from './options.js';
import { renderUnits, type RenderedUnits } from './units.js';

/** Everything the share should look like on this machine; no secret in it. */
export interface DesiredShare {
  share: ShareConfig;
  mode: ShareMode;
  source: string;
  /** As the config (and systemd) name it. */
  mountPoint: string;
  /** Under the root prefix: what this process touches. */
  realMountPoint: string;
  options: string[];
  units: RenderedUnits;
  /** Real path of the credentials file (key mode). */
  credentialsFile: string;
  credentialsSystemFile: string;
}

/** The configured share, or a config error for callers that need one. */
export function requireShare(ctx: TaskContext): ShareConfig {
  const share = ctx.cfg.share;
  if (!share) throw configError('share: no share configured', { fix: 'add a share section to the config' });
  return share;
}

/** "/data/workspace/" → "/data/workspace": systemd names the unit after the normalized path. */
export function normalizeMountPoint(p: string): string {
  const n = path.posix.normalize(p);
  return n.length > 1 ? n.replace(/\/+$/, '') : n;
}

/**
 * uid/gid as numbers. Names are resolved now, not at mount time: at boot
 * mount.cifs would look a domain group up before sssd answers and fail.
 */
export async function resolveId(ctx: TaskContext, kind: 'uid' | 'gid', value: number | string | undefined): Promise<number> {
  if (value === undefined) return 0;
  if (typeof value === 'number') return value;
  if (/^\d+$/.test(value)) return Number(value);
  const db = kind === 'uid' ? 'passwd' : 'group';
  const r = await ctx.run({ file: 'getent', args: [db, value], timeoutMs: 10_000 });
  const id = r.exitCode === 0 ? Number(r.stdout.split(':')[2]) : NaN;
  if (Number.isInteger(id)) return id;
  throw transient(
    `share.${kind}: ${kind === 'uid' ? 'user' : 'group'} "${value}" does not resolve${r.exitCode === 2 ? '' : ` (${summarize(r)})`}`,
    {
      fix: `check the name; a domain ${kind === 'uid' ? 'user' : 'group'} resolves only once the machine is joined and sssd runs (getent ${db} ${value})`,
      reason: 'share-id-unknown',
    },
  );
}

/** Derive the desired state from the config, the kernel and the join's facts. */
export async function desiredShare(ctx: TaskContext, kernelRelease: string = os.release()): Promise<DesiredShare> {
  const share = requireShare(ctx);
  const mode = shareMode(share);
  const mountPoint = normalizeMountPoint(share.mountPoint);
  const source = mountSource(share);
  const uid = mode === 'smb-key' ? await resolveId(ctx, 'uid', share.uid) : 0;
  const gid = mode === 'smb-key' ? await resolveId(ctx, 'gid', share.gid) : 0;
  const computer = ctx.state.facts.computerName;
  const options = mountOptions({
    share,
    kernel: parseKernelRelease(kernelRelease),
    uid,
    gid,
    credentialsFile: credentialsSystemPath(ctx.paths, share.account),
    machineAccount: typeof computer === 'string' && computer ? `${computer.toUpperCase()}$` : undefined,
  });
  const units = renderUnits({ share: { ...share, mountPoint }, mode, source, options });
  return {
    share,
    mode,
    source,
    mountPoint,
    realMountPoint: ctx.paths.under(mountPoint),
    options,
    units,
    credentialsFile: credentialsPath(ctx.paths, share.account),
    credentialsSystemFile: credentialsSystemPath(ctx.paths, share.account),
  };
}
