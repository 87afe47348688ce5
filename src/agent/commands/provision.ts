import type { GlobalOptions } from '../context.js';
import { ExitCode, exitCodeFor } from '../errors.js';
import { runFirstBoot, type FirstBootResult } from '../first-boot.js';
import type { Redactor } from '../redact.js';
import type { TaskOutcome } from '../task.js';
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

/** `dsvm-agent provision`: run the first-boot tasks now, in order; exit 0 when done. */
export async function provisionCommand(g: GlobalOptions, opts: { json?: boolean }): Promise<number> {
  const { ctx, store, tasks } = await firstBootContext(g);
  const result = await runFirstBoot(ctx, store, tasks);
  process.stdout.write(renderProvision(result, ctx.state.vmId, opts, ctx.redactor));
  return result.ok ? ExitCode.ok : exitCodeFor(result.failure);
}
