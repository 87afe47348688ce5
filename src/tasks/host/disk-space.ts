import { statfs } from 'node:fs/promises';
import { fail, ok, warn, type HealthCheck } from '../../agent/check.js';

const MIB = 2 ** 20;

/** Pure: free space verdict. sssd's cache, journald and the agent's state live on /var. */
export function diskVerdict(path: string, freeBytes: number, totalBytes: number) {
  const pct = totalBytes > 0 ? (freeBytes / totalBytes) * 100 : 100;
  const text = `${path}: ${(freeBytes / MIB).toFixed(0)} MiB free (${pct.toFixed(1)} %)`;
  if (freeBytes < 256 * MIB || pct < 2) return fail(`${text} (fix: free space on ${path}; sssd and journald stop writing when it is full)`);
  if (freeBytes < 1024 * MIB || pct < 10) return warn(`${text} (fix: free space on ${path})`);
  return ok(text);
}

export const diskSpaceCheck: HealthCheck = {
  id: 'disk-space',
  description: 'free space on /var',
  defaultSchedule: '45 */5 * * * *',
  timeoutMs: 10_000,
  async run(ctx) {
    // /var is a local disk: statfs in-process is safe (never point this at the share).
    const p = ctx.paths.under('/var');
    const s = await statfs(p);
    return diskVerdict('/var', s.bavail * s.bsize, s.blocks * s.bsize);
  },
};
