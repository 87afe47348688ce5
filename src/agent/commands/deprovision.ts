import { rm } from 'node:fs/promises';
import type { GlobalOptions } from '../context.js';
import { ExitCode, messageOf } from '../errors.js';
import { firstBootContext } from './shared.js';

/**
 * `dsvm-agent deprovision`: undo for image capture. Each first-boot task
 * removes what it left, in reverse order (the share before the join it may
 * depend on), then the state goes, so a captured image carries no identity
 * and `plan` on it shows every task pending. Safe to run twice.
 */
export async function deprovisionCommand(g: GlobalOptions, opts: { leaveDomain?: boolean }): Promise<number> {
  const { ctx, tasks } = await firstBootContext(g);
  let failed = false;
  for (const task of [...tasks].reverse()) {
    if (!task.undo) continue;
    try {
      const removed = await task.undo(ctx, { leaveDomain: opts.leaveDomain === true });
      for (const r of removed) process.stdout.write(`- ${task.id}: removed ${r}\n`);
      if (removed.length === 0) process.stdout.write(`= ${task.id}: nothing to remove\n`);
    } catch (err) {
      failed = true;
      process.stderr.write(`! ${task.id}: ${messageOf(err)}\n`);
    }
  }
  if (failed) {
    process.stderr.write('deprovision incomplete: state kept so the remaining steps can run again\n');
    return ExitCode.failed;
  }
  await rm(ctx.paths.stateDir, { recursive: true, force: true });
  process.stdout.write(`- state: removed ${ctx.paths.stateDir}\ndeprovisioned: this machine can be captured\n`);
  return ExitCode.ok;
}
