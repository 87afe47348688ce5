import { createBase, createTaskContext, loadConfigFor, type GlobalOptions } from '../../agent/context.js';
import type { Task, TaskContext } from '../../agent/task.js';
import type { StateStore } from '../../agent/state.js';
import { firstBootTasks } from '../capabilities.js';

/**
 * Load config, state and doors for a command that works on the first-boot
 * tasks. `readOnly` (plan) never touches the state file, even a corrupt one.
 */
export async function firstBootContext(
  g: GlobalOptions,
  opts: { readOnly?: boolean } = {},
): Promise<{ ctx: TaskContext; store: StateStore; newVm: boolean; tasks: readonly Task[] }> {
  const base = createBase(g);
  const cfg = await loadConfigFor(g, base);
  const { ctx, store, newVm } = await createTaskContext(base, cfg, { readOnly: opts.readOnly ?? false });
  return { ctx, store, newVm, tasks: firstBootTasks };
}
