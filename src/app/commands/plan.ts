import { ExitCode } from '../../agent/errors.js';
import type { GlobalOptions } from '../../agent/context.js';
import { planTasks, type PlanEntry } from '../../agent/task.js';
import { firstBootContext } from './shared.js';

const PENDING = 'pending (first boot not done: runs at next provision)';

/** The lines for one task: its mark and name, then what its check found. */
function renderEntry(e: PlanEntry): string[] {
  const detail = (lines: string[]): string[] => lines.map((l) => `    ${l}`);
  switch (e.status) {
    case 'skipped':
      return [`- ${e.id}: skipped (${e.reason})`];
    case 'up-to-date':
      return e.pending ? [`~ ${e.id}: ${PENDING}`, ...detail(['check: nothing differs now'])] : [`= ${e.id}: up to date`];
    case 'would-change':
      return [e.pending ? `~ ${e.id}: ${PENDING}` : `~ ${e.id}: would change`, ...detail(e.changes)];
    case 'unknown':
      return e.pending ? [`~ ${e.id}: ${PENDING}`, ...detail([`cannot tell now: ${e.error}`])] : [`? ${e.id}: cannot tell: ${e.error}`];
  }
}

/** Render the plan for people: one block per task. */
export function renderPlan(entries: readonly PlanEntry[], newVm: boolean): string {
  const lines: string[] = [];
  if (newVm) lines.push('first boot for this VM id: every task runs');
  else if (entries.some((e) => 'pending' in e && e.pending))
    lines.push('first boot has not completed on this VM: every task runs at the next provision');
  for (const e of entries) {
    lines.push(...renderEntry(e));
    if ('warnings' in e) for (const w of e.warnings) lines.push(`    warning: ${w}`);
  }
  return lines.join('\n') + '\n';
}

/** `dsvm-agent plan`: each task's check, nothing applied, nothing written (not even state, even a corrupt one). */
export async function planCommand(g: GlobalOptions, opts: { json?: boolean }): Promise<number> {
  const { ctx, newVm, tasks } = await firstBootContext(g, { readOnly: true });
  const entries = await planTasks(tasks, ctx);
  const text = opts.json ? JSON.stringify({ newVm, vmId: ctx.state.vmId, tasks: entries }, null, 2) + '\n' : renderPlan(entries, newVm);
  process.stdout.write(ctx.redactor.redact(text));
  return ExitCode.ok;
}
