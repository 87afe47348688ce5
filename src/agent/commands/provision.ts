import type { GlobalOptions } from '../context.js';
import { ExitCode, exitCodeFor } from '../errors.js';
import { runFirstBoot } from '../first-boot.js';
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

/** `dsvm-agent provision`: run the first-boot tasks now, in order; exit 0 when done. */
export async function provisionCommand(g: GlobalOptions, opts: { json?: boolean }): Promise<number> {
  const { ctx, store, tasks } = await firstBootContext(g);
  const result = await runFirstBoot(ctx, store, tasks);
  if (opts.json) {
    const outcomes = result.outcomes.map((o) =>
      o.status === 'failed'
        ? { id: o.id, status: o.status, attempts: o.attempts, error: o.error.message, fix: o.error.fix, kind: o.error.kind }
        : o,
    );
    process.stdout.write(
      JSON.stringify({ ok: result.ok, vmId: ctx.state.vmId, durationMs: result.durationMs, tasks: outcomes }, null, 2) + '\n',
    );
  } else {
    process.stdout.write(result.outcomes.map(renderOutcome).join('\n') + '\n');
    process.stdout.write(result.ok ? `provisioned in ${(result.durationMs / 1000).toFixed(1)} s\n` : 'provisioning stopped\n');
  }
  return result.ok ? ExitCode.ok : exitCodeFor(result.failure);
}
