/** Per action (a capability's Repair.action): attempts since the last recovery, and whether the daemon gave up. */
export interface RepairRecord {
  action: string;
  /** Start times (ms) of attempts not followed by a recovery, within the window. */
  attempts: number[];
  gaveUp: boolean;
  gaveUpAt?: string;
  lastAttemptAt?: string;
  lastResult?: 'ok' | 'failed';
  lastError?: string;
  succeeded: number;
  failed: number;
}

export function newRepairRecord(action: string): RepairRecord {
  return { action, attempts: [], gaveUp: false, succeeded: 0, failed: 0 };
}

export type RepairDecision = { allowed: true } | { allowed: false; reason: string };

/**
 * The rate limit. Every attempt counts until the check it served is seen ok
 * again: a "successful" remount after which the share dies again is still a
 * failure of the repair. maxAttempts such attempts inside windowSec latch
 * the action off (gave up) until the check recovers on its own or the
 * daemon restarts, so a repair can never loop; the operator sees why in
 * health and status.
 */
export class RepairLimiter {
  constructor(
    private readonly maxAttempts: number,
    private readonly windowMs: number,
  ) {}

  decide(rec: RepairRecord, now: number): RepairDecision {
    if (rec.gaveUp) return { allowed: false, reason: this.gaveUpReason(rec) };
    rec.attempts = rec.attempts.filter((t) => now - t < this.windowMs);
    if (rec.attempts.length >= this.maxAttempts) {
      rec.gaveUp = true;
      rec.gaveUpAt = new Date(now).toISOString();
      return { allowed: false, reason: this.gaveUpReason(rec) };
    }
    return { allowed: true };
  }

  /** Record an attempt as it starts (so a crash mid-repair still counts). */
  started(rec: RepairRecord, now: number): void {
    rec.attempts.push(now);
    rec.lastAttemptAt = new Date(now).toISOString();
  }

  finished(rec: RepairRecord, error?: string): void {
    if (error === undefined) {
      rec.lastResult = 'ok';
      rec.succeeded++;
      delete rec.lastError;
    } else {
      rec.lastResult = 'failed';
      rec.lastError = error;
      rec.failed++;
    }
  }

  /** The check this action serves is ok again: forget the attempts, lift the latch. */
  recovered(rec: RepairRecord): void {
    rec.attempts = [];
    rec.gaveUp = false;
    delete rec.gaveUpAt;
  }

  private gaveUpReason(rec: RepairRecord): string {
    return `gave up ${rec.action} after ${this.maxAttempts} attempts within ${Math.round(this.windowMs / 1000)} s${
      rec.lastError ? ` (last error: ${rec.lastError})` : ''
    }: fix it by hand; repairs resume once the check passes or the agent restarts`;
  }
}
