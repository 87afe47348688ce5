import type { CheckId } from './config-schema.js';
import type { TaskContext } from './task.js';

/** What a check saw: `warn` never makes the VM Unhealthy; `fail` may (health.unhealthyOn). */
export type CheckState = 'ok' | 'warn' | 'fail';

export interface CheckOutcome {
  state: CheckState;
  /** One line a person can act on; never a secret. */
  reason: string;
  /**
   * A failure that says nothing about this VM (a timeout, the DC or KDC
   * unreachable): it still shows in health, but never counts towards a
   * repair (see transient.ts).
   */
  transient?: boolean;
}

/**
 * One periodic check, declared by the capability it watches (its manifest's
 * `checks`). Checks do not depend on each other: each reads the system on
 * its own, so the scheduler may run them in any order, at once.
 */
export interface HealthCheck {
  id: CheckId;
  description: string;
  /** cron schedule (croner) (6 fields, seconds first) used when health.checks.<id>.schedule is unset. */
  defaultSchedule: string;
  /** The scheduler gives up on a run after this long and records a failure. */
  timeoutMs: number;
  /** A reason this check does not apply under this config (no share configured), or undefined. */
  skip?(ctx: TaskContext): string | undefined;
  run(ctx: TaskContext): Promise<CheckOutcome>;
}

export const ok = (reason: string): CheckOutcome => ({ state: 'ok', reason });
export const warn = (reason: string): CheckOutcome => ({ state: 'warn', reason });
export const fail = (reason: string): CheckOutcome => ({ state: 'fail', reason });
/** A failure of the transient kind (see CheckOutcome.transient). */
export const transientFail = (reason: string): CheckOutcome => ({ state: 'fail', reason, transient: true });
