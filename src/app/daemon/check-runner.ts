// croner, not node-cron: the daemon's memory (docs/operations.md, Checks).
import { Cron } from 'croner';
import type { CheckId } from '../../agent/config-schema.js';
import { settleWithin } from '../../agent/deadline.js';
import { messageOf } from '../../agent/errors.js';
import type { Logger } from '../../agent/log.js';
import type { TaskContext } from '../../agent/task.js';
import type { CheckOutcome, HealthCheck } from '../../agent/check.js';
import { isTransientError } from '../../agent/transient.js';
import { advance, pendingRecord, type CheckRecord } from './check-state.js';

export interface CheckRunnerDeps {
  ctx: TaskContext;
  checks: readonly HealthCheck[];
  log: Logger;
  now?: () => number;
  /** Called after every finished run (results, metrics, repairs). */
  onResult?(check: HealthCheck, record: CheckRecord, previous: CheckRecord): void;
}

/** The cron schedule of a check: config first, else the check's default. */
export function scheduleOf(check: HealthCheck, ctx: TaskContext): string {
  return ctx.cfg.health.checks[check.id]?.schedule ?? check.defaultSchedule;
}

/** Checks enabled in the config and applicable to it (a share check without a share is not). */
export function activeChecks(checks: readonly HealthCheck[], ctx: TaskContext): HealthCheck[] {
  return checks.filter((c) => ctx.cfg.health.checks[c.id]?.enabled !== false && c.skip?.(ctx) === undefined);
}

/**
 * Runs each check on its own schedule and keeps the latest result in
 * memory: health and status read that cache, never a check in flight.
 * A run that outlives its timeout is recorded as failed at once; its
 * promise keeps the slot until it settles (the runner SIGKILLs children at
 * their own deadline), so a hung check never piles up copies of itself.
 */
export class CheckRunner {
  readonly records = new Map<CheckId, CheckRecord>();
  private readonly inFlight = new Map<CheckId, { promise: Promise<CheckRecord>; startedAt: number }>();
  private readonly tasks: Cron[] = [];
  readonly active: HealthCheck[];
  private readonly now: () => number;
  private stopped = false;

  constructor(private readonly d: CheckRunnerDeps) {
    this.now = d.now ?? Date.now;
    this.active = activeChecks(d.checks, d.ctx);
    for (const c of this.active) this.records.set(c.id, pendingRecord(c.id, this.now()));
  }

  list(): CheckRecord[] {
    return this.active.map((c) => this.records.get(c.id)).filter((r): r is CheckRecord => r !== undefined);
  }

  /** Start the schedules (and one immediate run of each, so health has results within seconds). */
  start(opts: { runNow?: boolean } = {}): void {
    const cronLog = this.d.log.child('cron');
    for (const check of this.active) {
      const task = new Cron(
        scheduleOf(check, this.d.ctx),
        {
          // run() never throws (it records failures); anything that still
          // escapes is logged, never an unhandled rejection that ends the daemon.
          catch: (err) => cronLog.warn(`check-${check.id}: ${messageOf(err)}`),
        },
        () => void this.run(check.id),
      );
      this.tasks.push(task);
    }
    if (opts.runNow !== false) for (const c of this.active) void this.run(c.id);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.tasks) t.stop();
    this.tasks.length = 0;
  }

  /** Run every active check once, all at once (`status` without a daemon). */
  async runAll(): Promise<CheckRecord[]> {
    await Promise.all(this.active.map((c) => this.run(c.id)));
    return this.list();
  }

  /** Run one check now, or join the run in flight. */
  run(id: CheckId): Promise<CheckRecord> {
    const check = this.active.find((c) => c.id === id);
    const prev = this.records.get(id);
    if (!check || !prev) return Promise.reject(new Error(`internal: no active check ${id}`));
    const running = this.inFlight.get(id);
    if (running) {
      // Still hanging from an earlier schedule: say so, do not start another.
      if (this.now() - running.startedAt > check.timeoutMs && !prev.stuckSince) {
        this.records.set(id, { ...prev, stuckSince: new Date(running.startedAt).toISOString() });
      }
      return running.promise;
    }
    const startedAt = this.now();
    const raw = (async () => check.run(this.d.ctx))();
    // The slot is free only when the check itself settles, not at its timeout.
    const slot = { promise: this.record(check, startedAt, raw), startedAt };
    this.inFlight.set(id, slot);
    void raw.then(
      () => this.inFlight.delete(id),
      () => this.inFlight.delete(id),
    );
    return slot.promise;
  }

  private async record(check: HealthCheck, startedAt: number, raw: Promise<CheckOutcome>): Promise<CheckRecord> {
    const outcome = await withTimeout(check, raw);
    const prev = this.records.get(check.id) ?? pendingRecord(check.id, startedAt);
    const next = advance(prev, outcome, { startedAt, finishedAt: this.now() });
    if (this.stopped) return next;
    this.records.set(check.id, next);
    if (prev.state !== next.state) {
      const line = `${check.id}: ${prev.state} -> ${next.state}: ${next.reason}`;
      if (next.state === 'fail') this.d.log.warn(line);
      else this.d.log.info(line);
    }
    this.d.onResult?.(check, next, prev);
    return next;
  }
}

/**
 * A check's run as an outcome: thrown errors and timeouts become `fail`. A timeout, and a thrown error classified as
 * transient, are transient failures: they never count towards a repair.
 */
function withTimeout(check: HealthCheck, run: Promise<CheckOutcome>): Promise<CheckOutcome> {
  const outcome = run.catch((err: unknown): CheckOutcome => ({
    state: 'fail',
    reason: messageOf(err),
    ...(isTransientError(err) ? { transient: true } : {}),
  }));
  return settleWithin(outcome, check.timeoutMs, (): CheckOutcome => ({
    state: 'fail',
    reason: `no answer within ${check.timeoutMs} ms`,
    transient: true,
  }));
}
