import type { GlobalOptions } from '../../agent/context.js';
import { AgentError, ExitCode, exitCodeFor } from '../../agent/errors.js';
import { acquireLock } from '../../agent/lock.js';
import type { AgentState } from '../../agent/state.js';
import { runFirstBoot, type FirstBootResult } from '../../agent/first-boot.js';
import type { Redactor } from '../../agent/redact.js';
import type { TaskOutcome } from '../../agent/task.js';
import { firstBootContext } from './shared.js';

function renderOutcome(o: TaskOutcome): string {
  switch (o.status) {
    case 'skipped':
      return `- ${o.id}: skipped (${o.reason})`;
    case 'ok':
      return o.changed ? `+ ${o.id}: done (${o.changes.join('; ')})` : `= ${o.id}: already in place`;
    case 'failed':
      return `! ${o.id}: FAILED: ${o.error.message}${o.error.fix ? `\n    fix: ${o.error.fix}` : ''}`;
  }
}

/**
 * What provision prints. Redacted as a whole: a failed task's message can
 * carry a child's stderr (summarize()), and with it a secret the child echoed.
 */
export function renderProvision(result: FirstBootResult, vmId: string, opts: { json?: boolean }, redactor: Redactor): string {
  if (opts.json) {
    const outcomes = result.outcomes.map((o) =>
      o.status === 'failed'
        ? { id: o.id, status: o.status, attempts: o.attempts, error: o.error.message, fix: o.error.fix, kind: o.error.kind }
        : o,
    );
    return redactor.redact(JSON.stringify({ ok: result.ok, vmId, durationMs: result.durationMs, tasks: outcomes }, null, 2) + '\n');
  }
  const summary = result.ok ? `provisioned in ${(result.durationMs / 1000).toFixed(1)} s` : 'provisioning stopped';
  return redactor.redact([...result.outcomes.map(renderOutcome), summary].join('\n') + '\n');
}

export interface ProvisionDeps {
  /** How long to wait for another holder of the lock (a first boot the daemon started). */
  waitMs?: number;
  /** How often to say it is still waiting. */
  progressMs?: number;
  out?: (text: string) => void;
  err?: (text: string) => void;
}

/** Long enough for a whole first boot (join, mount) with retries, short enough for cloud-init not to look hung. */
export const PROVISION_WAIT_MS = 5 * 60_000;

/**
 * `dsvm-agent provision`: run the first-boot tasks now, in order; exit 0 when done.
 *
 * When another process holds the lock (the daemon's first boot, started by
 * the enabled unit before cloud-init's runcmd got here), provision waits for
 * it, bounded and saying so every few seconds, and then answers with that
 * run's outcome from the state: cloud-init's `runcmd: [dsvm-agent provision]`
 * then finishes when the VM is joined, instead of failing with exit 3 on a
 * VM that joins fine. When the holder was something else (a repair,
 * deprovision), provision runs the tasks itself once the lock is free.
 */
export async function provisionCommand(g: GlobalOptions, opts: { json?: boolean }): Promise<number> {
  return provision(g, opts);
}

/** {@link provisionCommand} with its waiting bounds and output injectable (tests). */
export async function provision(g: GlobalOptions, opts: { json?: boolean }, deps: ProvisionDeps = {}): Promise<number> {
  const out = deps.out ?? ((text: string) => void process.stdout.write(text));
  const err = deps.err ?? ((text: string) => void process.stderr.write(text));
  const deadline = Date.now() + (deps.waitMs ?? PROVISION_WAIT_MS);
  for (;;) {
    const { ctx, store, tasks } = await firstBootContext(g);
    const before = recordOf(ctx.state);
    try {
      const result = await runFirstBoot(ctx, store, tasks);
      out(renderProvision(result, ctx.state.vmId, opts, ctx.redactor));
      return result.ok ? ExitCode.ok : exitCodeFor(result.failure);
    } catch (e) {
      if (!(e instanceof AgentError && e.reason === 'locked')) throw e;
    }
    const waitMs = deadline - Date.now();
    // Throws notReady (exit 3) naming the holder when the wait runs out.
    const release = await acquireLock(ctx.paths.lockFile, 'provision (waiting for another run)', {
      waitMs: Math.max(0, waitMs),
      ...(deps.progressMs === undefined ? {} : { progressMs: deps.progressMs }),
      onWait: (waited) =>
        err(
          `provision: another run (most likely the daemon's first boot) holds the lock: waiting for it (${Math.round(waited / 1000)} s of ${Math.round(waitMs / 1000)} s; \`dsvm-agent status\` shows its progress)\n`,
        ),
    });
    const after = await store.read({ readOnly: true }).finally(release);
    if (after && after.vmId === ctx.state.vmId) {
      const theirs = recordOf(after);
      if (theirs.completedAt !== before.completedAt && theirs.completedAt !== undefined) {
        out(`first boot was done by the other run (completed ${theirs.completedAt})\n`);
        return ExitCode.ok;
      }
      if (theirs.errors.length > 0 && theirs.text !== before.text) {
        out(
          ctx.redactor.redact(
            `${theirs.errors.map(([id, msg]) => `! ${id}: FAILED: ${msg}`).join('\n')}\nprovisioning stopped (in the other run)\n`,
          ),
        );
        return ExitCode.failed;
      }
    }
    // The holder was no first boot (a repair, deprovision): run the tasks ourselves now.
  }
}

/** What a first-boot run leaves in the state: its completion, and each task's last error. */
function recordOf(state: AgentState): { completedAt: string | undefined; errors: [string, string][]; text: string } {
  const errors = Object.entries(state.tasks)
    .filter(([, v]) => v.lastError !== undefined)
    .map(([id, v]) => [id, v.lastError!] as [string, string]);
  return { completedAt: state.firstBootCompletedAt, errors, text: JSON.stringify([state.firstBootCompletedAt, state.tasks]) };
}
