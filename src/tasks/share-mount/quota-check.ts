import { fail, ok, warn, type HealthCheck } from '../../agent/check.js';
import type { TaskContext } from '../../agent/task.js';

/** Warn from this fraction of the quota on: a full share fails every user's writes at once. */
export const QUOTA_WARN_RATIO = 0.9;

const gib = (b: number): string => `${(b / 2 ** 30).toFixed(1)} GiB`;

/** Pure: the verdict for a usage/quota pair. */
export function quotaVerdict(usedBytes: number, quotaBytes: number) {
  if (!(quotaBytes > 0)) return ok(`${gib(usedBytes)} used (no quota reported)`);
  const ratio = usedBytes / quotaBytes;
  const text = `${gib(usedBytes)} of ${gib(quotaBytes)} used (${(ratio * 100).toFixed(1)} %)`;
  if (ratio >= 1) return fail(`share full: ${text} (fix: raise the share quota or free space)`);
  if (ratio >= QUOTA_WARN_RATIO) return warn(`share nearly full: ${text} (fix: raise the share quota or free space)`);
  return ok(text);
}

/** Usage against quota through the Files REST API (share stats + properties), not the mount. */
export const shareQuotaCheck = (shareUsage: (ctx: TaskContext) => Promise<{ usedBytes: number; quotaBytes: number }>): HealthCheck => ({
  id: 'share-quota',
  description: 'share usage is below 90 % of its quota',
  defaultSchedule: '0 */15 * * * *',
  timeoutMs: 30_000,
  skip: (ctx) => {
    if (!ctx.cfg.share) return 'no share configured';
    // NFS shares have no file data-plane REST to ask.
    return ctx.cfg.share.type === 'nfs' ? 'NFS shares have no Files REST usage API' : undefined;
  },
  async run(ctx) {
    const u = await shareUsage(ctx);
    return quotaVerdict(u.usedBytes, u.quotaBytes);
  },
});
