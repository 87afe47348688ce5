import type { Config, SecretRef } from './config-schema.js';
import type { ImdsClient } from './azure/imds.js';
import type { AzureChild } from './azure/child.js';
import { AgentError, cancelled, messageOf } from './errors.js';
import { inTask, type Logger } from './log.js';
import type { Paths } from './paths.js';
import type { Redactor } from './redact.js';
import type { Runner } from './runner.js';
import type { SecretCache } from './secrets.js';
import type { ServiceManager } from './service-manager.js';
import type { AgentState } from './state.js';
import { backoffDelay, mayRetry, type BackoffPolicy } from './backoff.js';

/** Everything a task may use; side effects go only through these doors. */
export interface TaskContext {
  cfg: Config;
  paths: Paths;
  run: Runner;
  log: Logger;
  redactor: Redactor;
  imds: ImdsClient;
  services: ServiceManager;
  state: AgentState;
  /** Resolve a secret reference (cached in `secrets`, registered with the redactor). */
  secret(ref: SecretRef, keyPath: string): Promise<string>;
  /** The secrets this context resolved, by name (a reference, the share's storage key). */
  secrets: SecretCache;
  /**
   * Aborted when this work is to stop: the daemon's stop, or a Terminate
   * whose clean-up needs the machine (see withSignal in context.ts). Commands
   * run through `run` are killed and `clock.sleep` ends with a `cancelled`
   * error; the task engine then neither retries nor records it.
   */
  signal: AbortSignal;
  /** Injected clock so retries and timeouts are testable. */
  clock: { now(): number; sleep(ms: number): Promise<void> };
  /** Set in the daemon: Azure SDK calls run in a child process (see azure/child.ts); in-process otherwise. */
  azureChild?: AzureChild | undefined;
  /** The owner a secret file must have: root (0) unless set; only tests set it (see readSecretFile). */
  secretFileOwnerUid?: number;
}

/** What `check` found: what `apply` would change. `changes` empty means up to date. */
export interface CheckResult {
  changes: string[];
  /** Facts for `apply` (e.g. the rendered files), never secrets. */
  detail?: Record<string, unknown>;
  /** A warning that does not need a change (e.g. clock offset above 1 minute). */
  warnings?: string[];
}

/** One capability: `check` says what differs (what `plan` prints); `apply` changes only that and is safe to run twice. */
export interface Task {
  id: string;
  description: string;
  /** A reason to skip this task under this config (e.g. no share configured), or undefined to run it. */
  skip?(ctx: TaskContext): string | undefined;
  /**
   * The ids of earlier tasks in the list this one needs under this config.
   * When one of them failed (or did not run) this task does not run either;
   * the others still do. Declared by each capability's manifest (agent/capability.ts);
   * a task without it needs every task before it.
   */
  needs?(cfg: Config): readonly string[];
  check(ctx: TaskContext): Promise<CheckResult>;
  apply(ctx: TaskContext, found: CheckResult): Promise<void>;
}

export type TaskOutcome =
  | { id: string; status: 'skipped'; reason: string }
  | { id: string; status: 'ok'; changed: boolean; changes: string[]; attempts: number; warnings: string[] }
  | { id: string; status: 'failed'; error: AgentError; attempts: number };

export interface RunTasksOptions {
  backoff: BackoffPolicy;
  random?: () => number;
  /** Called as each task starts (STATUS= for systemd, health detail). */
  onTask?(task: Task, attempt: number): void;
}

function asAgentError(err: unknown): AgentError {
  if (err instanceof AgentError) return err;
  // Unknown failures are treated as permanent: retrying a bug only hides it.
  return new AgentError('permanent', messageOf(err), { cause: err });
}

/**
 * Run tasks in order: check, apply what differs, check again to prove it
 * converged. Transient failures retry the task with backoff. A permanent
 * failure does not stop the list: the tasks that need the failed one (see
 * {@link Task.needs}) are not run, so none works on a half-made base, and
 * the others still run (a join that failed must not leave a key-mounted
 * share unmounted). Every line logged during a task names it, its
 * commands' lines included.
 */
export async function runTasks(tasks: readonly Task[], ctx: TaskContext, opts: RunTasksOptions): Promise<TaskOutcome[]> {
  const outcomes: TaskOutcome[] = [];
  const notDone = new Map<string, string>();
  for (const [i, task] of tasks.entries()) {
    if (ctx.signal.aborted) throw cancelled(ctx.signal);
    const earlier = tasks.slice(0, i).map((t) => t.id);
    const needs = task.needs ? task.needs(ctx.cfg) : earlier;
    // A need later in the list is a mistake in the list; one not in it at all
    // is fine (a task re-run alone, as the daemon's repairs do).
    const later = needs.filter((id) => tasks.slice(i).some((t) => t.id === id));
    if (later.length > 0) throw new Error(`internal: task ${task.id} needs ${later.join(', ')}, which do not come before it`);
    const missing = needs.filter((id) => notDone.has(id));
    if (missing.length > 0) {
      const reason = `not run: needs ${missing.map((id) => `${id} (${notDone.get(id)!})`).join(', ')}`;
      ctx.log.child(task.id).warn(reason);
      outcomes.push({ id: task.id, status: 'skipped', reason });
      notDone.set(task.id, 'not run');
      continue;
    }
    const outcome = await inTask(task.id, () => runTask(task, ctx, opts));
    outcomes.push(outcome);
    if (outcome.status === 'failed') notDone.set(task.id, 'failed');
  }
  return outcomes;
}

async function runTask(task: Task, ctx: TaskContext, opts: RunTasksOptions): Promise<TaskOutcome> {
  const log = ctx.log.child(task.id);
  const skip = task.skip?.(ctx);
  if (skip !== undefined) {
    log.info(`skipped: ${skip}`);
    return { id: task.id, status: 'skipped', reason: skip };
  }
  const started = ctx.clock.now();
  for (let attempts = 1; ; attempts++) {
    opts.onTask?.(task, attempts);
    try {
      return await checkAndApply(task, ctx, log, attempts);
    } catch (err) {
      // Stopped from outside: not this task's failure, so neither retried nor recorded as its error.
      if (ctx.signal.aborted) throw cancelled(ctx.signal);
      const error = asAgentError(err);
      // A child's stderr can reach the message (summarize()): the state file must not keep a secret it echoed.
      ctx.state.tasks[task.id] = { ...ctx.state.tasks[task.id], lastError: ctx.redactor.redact(error.describe()) };
      const delay = backoffDelay(opts.backoff, attempts, opts.random);
      if (error.kind === 'transient' && mayRetry(opts.backoff, attempts, ctx.clock.now() - started, delay)) {
        log.warn(`attempt ${attempts} failed, retrying in ${(delay / 1000).toFixed(1)} s: ${error.describe()}`);
        await ctx.clock.sleep(delay);
        continue;
      }
      log.error(`failed${attempts > 1 ? ` after ${attempts} attempts` : ''}: ${error.describe()}`);
      return { id: task.id, status: 'failed', error, attempts };
    }
  }
}

/** One attempt: check, apply what differs, check again. Throws what failed. */
async function checkAndApply(task: Task, ctx: TaskContext, log: Logger, attempts: number): Promise<TaskOutcome> {
  const found = await task.check(ctx);
  const warnings = found.warnings ?? [];
  for (const w of warnings) log.warn(w);
  if (found.changes.length === 0) {
    log.info('up to date');
    const previous = ctx.state.tasks[task.id];
    ctx.state.tasks[task.id] = { ...previous, appliedAt: previous?.appliedAt ?? new Date(ctx.clock.now()).toISOString() };
    delete ctx.state.tasks[task.id]?.lastError;
    return { id: task.id, status: 'ok', changed: false, changes: [], attempts, warnings };
  }
  for (const c of found.changes) log.info(`will change: ${c}`);
  await task.apply(ctx, found);
  const after = await task.check(ctx);
  if (after.changes.length > 0) {
    throw new AgentError('permanent', `still differs after apply: ${after.changes.join('; ')}`, { reason: 'not-converged' });
  }
  log.info('done');
  ctx.state.tasks[task.id] = { appliedAt: new Date(ctx.clock.now()).toISOString() };
  return { id: task.id, status: 'ok', changed: true, changes: found.changes, attempts, warnings };
}

/**
 * Run one step, retrying it with backoff while it fails transiently (for
 * steps outside the check/apply loop, such as deleting the computer account
 * on deprovision). A permanent failure, or the budget spent, throws the last
 * error.
 */
export async function retryTransient<T>(
  ctx: Pick<TaskContext, 'clock' | 'log'>,
  what: string,
  policy: BackoffPolicy,
  step: () => Promise<T>,
  random?: () => number,
): Promise<T> {
  const started = ctx.clock.now();
  for (let attempts = 1; ; attempts++) {
    try {
      return await step();
    } catch (err) {
      const error = asAgentError(err);
      const delay = backoffDelay(policy, attempts, random);
      if (error.kind !== 'transient' || !mayRetry(policy, attempts, ctx.clock.now() - started, delay)) throw error;
      ctx.log.warn(`${what}: attempt ${attempts} failed, retrying in ${(delay / 1000).toFixed(1)} s: ${error.describe()}`);
      await ctx.clock.sleep(delay);
    }
  }
}

/** What `plan` prints per task: its check result, nothing applied. */
export type PlanEntry =
  | { id: string; description: string; status: 'skipped'; reason: string }
  | {
      id: string;
      description: string;
      status: 'up-to-date' | 'would-change';
      changes: string[];
      warnings: string[];
      /** First boot is not recorded done: the task runs at the next provision, whatever its check says now. */
      pending?: true;
    }
  | { id: string; description: string; status: 'unknown'; error: string; pending?: true };

/**
 * Check every task without applying anything. A later task's check may depend
 * on an earlier task's result (a mount needs the join's config): it reports
 * what it can see now, and plan says so. Until first boot is recorded done
 * (a new VM, or after `deprovision`) every task that is not skipped is
 * pending: provision runs it, and a check often cannot tell yet (preflight
 * never reports changes; the join cannot ask a DC it has not found).
 */
export async function planTasks(tasks: readonly Task[], ctx: TaskContext): Promise<PlanEntry[]> {
  const pending = ctx.state.firstBootCompletedAt === undefined;
  const out: PlanEntry[] = [];
  for (const task of tasks) out.push(await inTask(task.id, () => planTask(task, ctx, pending)));
  return out;
}

async function planTask(task: Task, ctx: TaskContext, pending: boolean): Promise<PlanEntry> {
  const { id, description } = task;
  const skip = task.skip?.(ctx);
  if (skip !== undefined) return { id, description, status: 'skipped', reason: skip };
  // What a check says can carry a child's stderr: it is printed, so it is redacted here.
  const clean = (text: string): string => ctx.redactor.redact(text);
  const mark = pending ? { pending: true as const } : {};
  try {
    const found = await task.check(ctx);
    const status = found.changes.length === 0 ? 'up-to-date' : 'would-change';
    return { id, description, status, changes: found.changes.map(clean), warnings: (found.warnings ?? []).map(clean), ...mark };
  } catch (err) {
    return { id, description, status: 'unknown', error: clean(messageOf(err)), ...mark };
  }
}
