import type { CheckId } from '../../agent/config-schema.js';
import type { CheckOutcome, CheckState } from '../../agent/check.js';

/** A check's record as health, status and metrics show it. `pending`: no result yet. */
export interface CheckRecord {
  id: CheckId;
  state: CheckState | 'pending';
  /** When the check entered its current state (ISO); changes only on a transition. */
  since: string;
  reason: string;
  lastRunAt?: string;
  lastDurationMs?: number;
  /** Runs in a row with the same state. */
  streak: number;
  runs: number;
  /** The latest failure was of the transient kind (timeout, DC unreachable): see agent/transient.ts. */
  transient?: boolean;
  /**
   * Failures of the non-transient kind in a row. A transient failure breaks
   * the row (it says nothing about this VM either way), as does a pass; the
   * repair policy acts on this count, never on one bad run.
   */
  hardFailures?: number;
  /** Set while a run is in flight past its timeout (a hung probe still being waited for). */
  stuckSince?: string;
}

export function pendingRecord(id: CheckId, now: number): CheckRecord {
  return { id, state: 'pending', since: new Date(now).toISOString(), reason: 'not run yet', streak: 0, runs: 0 };
}

/**
 * Pure transition: a new outcome updates the reason every time, but `since`
 * only when the state changes, so "failing since 10:02" survives a reason
 * that mentions a changing number.
 */
export function advance(prev: CheckRecord, outcome: CheckOutcome, at: { startedAt: number; finishedAt: number }): CheckRecord {
  const changed = prev.state !== outcome.state;
  const next: CheckRecord = {
    id: prev.id,
    state: outcome.state,
    since: changed ? new Date(at.finishedAt).toISOString() : prev.since,
    reason: outcome.reason,
    lastRunAt: new Date(at.startedAt).toISOString(),
    lastDurationMs: Math.max(0, at.finishedAt - at.startedAt),
    streak: changed ? 1 : prev.streak + 1,
    runs: prev.runs + 1,
  };
  const hard = outcome.state === 'fail' && outcome.transient !== true;
  if (outcome.state === 'fail' && !hard) next.transient = true;
  if (hard) next.hardFailures = (prev.hardFailures ?? 0) + 1;
  return next;
}
