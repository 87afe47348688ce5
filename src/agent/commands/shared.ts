import { firstBootTasks } from '../../tasks/first-boot.js';
import { createBase, createTaskContext, loadConfigFor, type GlobalOptions } from '../context.js';
import type { Task, TaskContext } from '../task.js';
import type { StateStore } from '../state.js';

/** Load config, state and doors for a command that works on the first-boot tasks. */
export async function firstBootContext(
  g: GlobalOptions,
): Promise<{ ctx: TaskContext; store: StateStore; newVm: boolean; tasks: readonly Task[] }> {
  const base = createBase(g);
  const cfg = await loadConfigFor(g, base);
  const { ctx, store, newVm } = await createTaskContext(base, cfg);
  return { ctx, store, newVm, tasks: firstBootTasks };
}
