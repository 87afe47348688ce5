import path from 'node:path';
import { firstBootBackoff, type BackoffPolicy } from './backoff.js';
import { AgentError } from './errors.js';
import { acquireLock } from './lock.js';
import type { StateStore } from './state.js';
import { runTasks, type Task, type TaskContext, type TaskOutcome } from './task.js';

export interface FirstBootResult {
  ok: boolean;
  outcomes: TaskOutcome[];
  failure?: AgentError;
  durationMs: number;
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
  const release = await acquireLock(path.join(ctx.paths.runDir, 'first-boot.lock'), 'first boot');
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
    const failed = outcomes.find((o) => o.status === 'failed');
    const durationMs = ctx.clock.now() - started;
    if (!failed) {
      if (!ctx.state.firstBootCompletedAt) {
        ctx.state.firstBootCompletedAt = new Date(ctx.clock.now()).toISOString();
        ctx.state.firstBootDurationMs = ctx.clock.now() - Date.parse(ctx.state.firstBootStartedAt);
      }
    }
    await store.write(ctx.state);
    return failed && failed.status === 'failed'
      ? { ok: false, outcomes, failure: failed.error, durationMs }
      : { ok: true, outcomes, durationMs };
  } finally {
    await release();
  }
}
