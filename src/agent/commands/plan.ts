import { ExitCode } from '../errors.js';
import type { GlobalOptions } from '../context.js';
import { planTasks, type PlanEntry } from '../task.js';
import { firstBootContext } from './shared.js';

/** Render the plan for people: one block per task. */
export function renderPlan(entries: readonly PlanEntry[], newVm: boolean): string {
  const lines: string[] = [];
  if (newVm) lines.push('first boot for this VM id: every task runs');
  for (const e of entries) {
    switch (e.status) {
      case 'skipped':
        lines.push(`- ${e.id}: skipped (${e.reason})`);
        break;
      case 'up-to-date':
        lines.push(`= ${e.id}: up to date`);
        break;
      case 'would-change':
        lines.push(`~ ${e.id}: would change`);
        for (const c of e.changes) lines.push(`    ${c}`);
        break;
      case 'unknown':
        lines.push(`? ${e.id}: cannot tell: ${e.error}`);
        break;
    }
    if ('warnings' in e) for (const w of e.warnings) lines.push(`    warning: ${w}`);
  }
  return lines.join('\n') + '\n';
}

/** `dsvm-agent plan`: each task's check, nothing applied, nothing written (not even state). */
export async function planCommand(g: GlobalOptions, opts: { json?: boolean }): Promise<number> {
  const { ctx, newVm, tasks } = await firstBootContext(g);
  const entries = await planTasks(tasks, ctx);
  process.stdout.write(
    opts.json ? JSON.stringify({ newVm, vmId: ctx.state.vmId, tasks: entries }, null, 2) + '\n' : renderPlan(entries, newVm),
  );
  return ExitCode.ok;
}
