import { firstBootBackoff, type BackoffPolicy } from './backoff.js';
import { AgentError } from './errors.js';
import { acquireLock } from './lock.js';
import type { StateStore } from './state.js';
import { runTasks, type Task, type TaskContext, type TaskOutcome } from './task.js';

export interface FirstBootResult {
  ok: boolean;
  outcomes: TaskOutcome[];
  /**
   * Every task that failed or did not run, each by id with its reason (what
   * status and /health show); its kind is the first failure's, for the exit code.
   */
  failure?: AgentError;
  durationMs: number;
}

/** One error naming each failed task and its error, and each task that did not run because of it. */
export function firstBootFailure(outcomes: readonly TaskOutcome[]): AgentError | undefined {
  const failed = outcomes.filter((o) => o.status === 'failed');
  const first = failed[0];
  if (!first) return undefined;
  const notRun = outcomes.flatMap((o) => (o.status === 'skipped' && o.reason.startsWith('not run:') ? [`${o.id} ${o.reason}`] : []));
  const parts = [...failed.map((o) => `${o.id} failed: ${o.error.message}`), ...notRun];
  const fixes = failed.filter((o) => o.error.fix).map((o) => (failed.length > 1 ? `${o.id}: ${o.error.fix!}` : o.error.fix!));
  return new AgentError(first.error.kind, parts.join('; '), {
    ...(fixes.length > 0 ? { fix: fixes.join('; ') } : {}),
    ...(first.error.reason ? { reason: first.error.reason } : {}),
    cause: first.error,
  });
}

/**
 * Run the first-boot list under the lock and record the outcome in the state.
 * Used by `provision` and by the daemon's background first boot alike.
 */
export async function runFirstBoot(
  ctx: TaskContext,
  store: StateStore,
  tasks: readonly Task[],
  opts: { backoff?: BackoffPolicy; onTask?: (task: Task, attempt: number) => void } = {},
): Promise<FirstBootResult> {
  const release = await acquireLock(ctx.paths.lockFile, 'first boot');
  const started = ctx.clock.now();
  try {
    ctx.state.firstBootStartedAt ??= new Date(started).toISOString();
    // What deprovision undoes when the config file is gone by then (references only, no secret values).
    ctx.state.facts.appliedConfig = ctx.cfg;
    await store.write(ctx.state);
    const outcomes = await runTasks(tasks, ctx, {
      backoff: opts.backoff ?? firstBootBackoff,
      ...(opts.onTask ? { onTask: opts.onTask } : {}),
    });
    const failed = firstBootFailure(outcomes);
    const durationMs = ctx.clock.now() - started;
    if (!failed) {
      if (!ctx.state.firstBootCompletedAt) {
        ctx.state.firstBootCompletedAt = new Date(ctx.clock.now()).toISOString();
        ctx.state.firstBootDurationMs = ctx.clock.now() - Date.parse(ctx.state.firstBootStartedAt);
      }
    }
    await store.write(ctx.state);
    return failed ? { ok: false, outcomes, failure: failed, durationMs } : { ok: true, outcomes, durationMs };
  } finally {
    await release();
  }
}
