import { sweep, type SweepReport } from '../../tasks/sweep/index.js';
import { createBase, createTaskContext, loadConfigFor, type GlobalOptions } from '../../agent/context.js';
import { ExitCode } from '../../agent/errors.js';

/**
 * `dsvm-agent sweep [--dry-run] [--json]`: delete the computer objects of
 * this pool whose VM no longer exists. Only the sweeper (the live VM of the
 * pool with the lowest vmId) deletes; on any other VM, and with --dry-run,
 * it lists and changes nothing. Exit 0 done (or nothing to do), 1 when a
 * deletion failed. docs/operations.md.
 */
export async function sweepCommand(g: GlobalOptions, opts: { dryRun?: boolean; json?: boolean }): Promise<number> {
  const base = createBase(g);
  const cfg = await loadConfigFor(g, base);
  // Reads the state (the vmId, the computer name), never writes it.
  const { ctx } = await createTaskContext(base, cfg, { readOnly: true });
  const report = await sweep(ctx, { dryRun: opts.dryRun ?? false });
  process.stdout.write(base.redactor.redact(opts.json ? `${JSON.stringify(report, null, 2)}\n` : renderReport(report)));
  return report.failed.length > 0 ? ExitCode.failed : ExitCode.ok;
}

/** Pure: the report as an admin reads it. */
export function renderReport(r: SweepReport): string {
  const how = r.source === 'arm' ? "the scale set's VM list (ARM)" : 'machine-password age (no ARM rights)';
  const lines = [`pool: computer objects under ${r.base} named ${r.prefix}*, stamped with a vmId; existence from ${how}`];
  lines.push(`live: ${r.live.map((c) => c.name).join(', ') || 'none'}`);
  if (r.stale.length === 0) lines.push('stale: none');
  for (const c of r.stale) {
    const done = r.deleted.includes(c.name) ? 'deleted' : r.failed.find((f) => f.name === c.name) ? 'FAILED' : 'would delete';
    lines.push(`stale: ${c.name} (vmId ${c.vmId}): ${c.reason}: ${done}`);
  }
  for (const f of r.failed) lines.push(`error: ${f.name}: ${f.error}`);
  if (!r.sweeping)
    lines.push(
      `not the sweeper: VM ${r.sweeper ?? '(none live)'} sweeps (the live VM of the pool with the lowest vmId); this VM (${r.self}) changed nothing`,
    );
  else if (r.dryRun) lines.push('dry run: nothing changed');
  return `${lines.join('\n')}\n`;
}
