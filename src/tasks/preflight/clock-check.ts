import { fail, ok, warn, type HealthCheck } from '../../agent/check.js';
import type { TaskContext } from '../../agent/task.js';

/** Kerberos refuses tickets beyond 5 minutes of skew (MIT default clockskew). */
export const CLOCK_FAIL_MS = 5 * 60_000;
/** Far enough from the limit to fix before logins break. */
export const CLOCK_WARN_MS = 60_000;

/** Pure: the verdict for an offset to the DC. */
export function clockVerdict(offsetMs: number, source: string) {
  const text = `clock offset to ${source}: ${(offsetMs / 1000).toFixed(1)} s`;
  const abs = Math.abs(offsetMs);
  if (abs >= CLOCK_FAIL_MS) return fail(`${text}, beyond Kerberos' 5 minutes (fix: check chrony/timesyncd and the VM's time source)`);
  if (abs >= CLOCK_WARN_MS) return warn(`${text} (fix: check chrony/timesyncd)`);
  return ok(text);
}

/** Local clock against the DC's, and where the DC's time came from (see clockOffset in index.ts). */
export type ReadClockOffset = (ctx: TaskContext) => Promise<{ offsetMs: number; source: string }>;

/** The clock check over a way to read the offset (tests give a fixed one). */
export const clockCheck = (clockOffset: ReadClockOffset): HealthCheck => ({
  id: 'clock',
  description: 'the clock is within Kerberos skew of the domain controller',
  defaultSchedule: '30 */10 * * * *',
  timeoutMs: 20_000,
  async run(ctx) {
    const c = await clockOffset(ctx);
    return clockVerdict(c.offsetMs, c.source);
  },
});
