import { readFile, rm } from 'node:fs/promises';
import { ConfigInvalid, loadConfig, validateConfig } from '../config.js';
import type { Config } from '../config-schema.js';
import { configPath, createBase, createTaskContext, type Base, type GlobalOptions } from '../context.js';
import { ExitCode, messageOf } from '../errors.js';
import { firstBootTasks } from '../../tasks/first-boot.js';

/**
 * The config to undo with. An image is often captured before any config
 * exists (cloud-init writes it on first boot), or after the admin removed it:
 * then the config the agent last provisioned with (kept in the state, which
 * holds references, never secret values) says what to remove; with neither,
 * only what the agent leaves at fixed places is removed.
 */
async function undoConfig(g: GlobalOptions, base: Base): Promise<{ cfg: Config; source: string }> {
  const file = configPath(g, base.paths);
  try {
    return { cfg: await loadConfig(file), source: file };
  } catch (err) {
    if (!(err instanceof ConfigInvalid)) throw err;
    try {
      const state = JSON.parse(await readFile(base.paths.stateFile, 'utf8')) as { facts?: { appliedConfig?: unknown } };
      if (state.facts?.appliedConfig)
        return { cfg: validateConfig(state.facts.appliedConfig, 'state'), source: 'the last provisioned config' };
    } catch {
      /* no usable state: fall through */
    }
    return {
      cfg: validateConfig(
        { domain: { name: 'unconfigured.invalid', joinUser: 'none', joinPassword: { file: '/nonexistent' } } },
        'built-in',
      ),
      source: 'none (no config and no state: fixed locations only)',
    };
  }
}

/**
 * `dsvm-agent deprovision`: undo for image capture. Each first-boot task
 * removes what it left, in reverse order (the share before the join it may
 * depend on), then the state goes, so a captured image carries no identity
 * and `plan` on it shows every task pending. Safe to run twice.
 */
export async function deprovisionCommand(g: GlobalOptions, opts: { leaveDomain?: boolean }): Promise<number> {
  const base = createBase(g);
  const { cfg, source } = await undoConfig(g, base);
  // Deprovision runs in image-build chroots too: it never needs the VM id.
  const { ctx } = await createTaskContext(base, cfg, { offline: true });
  process.stdout.write(`config: ${source}\n`);
  let failed = false;
  for (const task of [...firstBootTasks].reverse()) {
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
