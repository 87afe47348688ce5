import { fail, ok, type HealthCheck } from '../../agent/check.js';
import type { TaskContext } from '../../agent/task.js';
import type { ShareProbe } from './probe.js';

/**
 * The share is mounted and answers. The probe runs in a child process the
 * share module can kill: a dead SMB server leaves in-kernel I/O hanging in D
 * state, and a stat() from the daemon itself would take a libuv worker
 * thread with it (four of them stall the whole process, health included).
 */
/** What the check reads of a probe. */
export type ShareAnswer = Pick<ShareProbe, 'mounted' | 'responsive' | 'source' | 'reason'>;

export const shareMountedCheck = (probeShare: (ctx: TaskContext, opts: { timeoutMs: number }) => Promise<ShareAnswer>): HealthCheck => ({
  id: 'share-mounted',
  description: 'the workspace share is mounted and responsive',
  defaultSchedule: '*/30 * * * * *',
  timeoutMs: 15_000,
  skip: (ctx) => (ctx.cfg.share ? undefined : 'no share configured'),
  async run(ctx) {
    const p = await probeShare(ctx, { timeoutMs: 10_000 });
    const where = ctx.cfg.share?.mountPoint ?? 'the mount point';
    if (!p.mounted) return fail(`${where} is not mounted: ${p.reason}`);
    if (!p.responsive) return fail(`${where} is mounted but not responding: ${p.reason}`);
    return ok(`${where} mounted${p.source ? ` from ${p.source}` : ''} and responsive`);
  },
});
