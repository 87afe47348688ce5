import { underFirstBootLock, type Capability } from '../../agent/capability.js';
import type { Config } from '../../agent/config-schema.js';
import type { TaskContext } from '../../agent/task.js';
import { credentialsSystemPath } from './credentials.js';
import { closeHandlesAndUnmount, probeShare, remountShare, shareMountTask, shareUsage, undoShareMount } from './index.js';
import { shareMountedCheck, type ShareAnswer } from './mounted-check.js';
import { shareMode } from './options.js';
import { shareQuotaCheck } from './quota-check.js';

/**
 * Does the share need the join? A Kerberos mount authenticates with the
 * machine's keytab and the users' tickets; a share owned by a user or group
 * given by name may name a domain one, which resolves only once the machine
 * is joined and sssd runs (a local name would do without it, but telling
 * the two apart needs a look-up; the dependency matters only when the join
 * failed). A key mount with numeric ids, and NFS, need nothing from the domain.
 */
export function shareNeedsJoin(cfg: Config): boolean {
  const share = cfg.share;
  if (!share) return false;
  const mode = shareMode(share);
  if (mode === 'smb-kerberos') return true;
  return mode === 'smb-key' && [share.uid, share.gid].some((id) => typeof id === 'string');
}

/** What the share capability does outside its task; tests replace them. */
export interface ShareMountDoors {
  probeShare(ctx: TaskContext, opts: { timeoutMs: number }): Promise<ShareAnswer>;
  shareUsage(ctx: TaskContext): Promise<{ usedBytes: number; quotaBytes: number }>;
  remountShare(ctx: TaskContext): Promise<void>;
  closeHandlesAndUnmount(ctx: TaskContext): Promise<unknown>;
}

const realDoors: ShareMountDoors = {
  probeShare,
  shareUsage: (ctx) => shareUsage(ctx),
  remountShare: (ctx) => remountShare(ctx),
  closeHandlesAndUnmount: (ctx) => closeHandlesAndUnmount(ctx),
};

/**
 * The workspace share: mounts it on first boot; watches that it answers and
 * its quota; remounts it when it is gone; on scale-in closes this VM's
 * handles and unmounts, before the join it may depend on is removed.
 */
export function shareMountCapability(over: Partial<ShareMountDoors> = {}): Capability {
  const d = { ...realDoors, ...over };
  return {
    id: 'share-mount',
    firstBoot: { task: shareMountTask, needs: (cfg) => (shareNeedsJoin(cfg) ? ['domain-join'] : []) },
    checks: [shareMountedCheck((ctx, o) => d.probeShare(ctx, o)), shareQuotaCheck((ctx) => d.shareUsage(ctx))],
    repairs: [
      { action: 'remount-share', checks: ['share-mounted'], run: underFirstBootLock('remount-share', (ctx) => d.remountShare(ctx)) },
    ],
    terminate: [{ id: 'share', label: 'closing share handles and unmounting', run: (ctx) => d.closeHandlesAndUnmount(ctx) }],
    deprovision: {
      describe: (ctx) => {
        const share = ctx.cfg.share;
        if (!share) return [];
        return [`unmount ${share.mountPoint}, remove its mount units and ${credentialsSystemPath(ctx.paths, share.account)}`];
      },
      undo: (ctx) => undoShareMount(ctx),
    },
  };
}

export const shareMount: Capability = shareMountCapability();
