import { notImplemented } from '../../agent/errors.js';
import type { Task } from '../../agent/task.js';

/** DNS, ports, clock and secrets the join needs. */
export const preflightTask: Task = {
  id: 'preflight',
  description: 'DNS, ports, clock and secrets the join needs',
  async check() {
    throw notImplemented('preflight: not available in this build yet');
  },
  async apply() {
    throw notImplemented('preflight: not available in this build yet');
  },
};
