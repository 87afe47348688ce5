import { notImplemented } from '../../agent/errors.js';
import type { Task } from '../../agent/task.js';

/** mount the Azure Files share persistently. */
export const shareMountTask: Task = {
  id: 'share-mount',
  description: 'mount the Azure Files share persistently',
  async check() {
    throw notImplemented('share-mount: not available in this build yet');
  },
  async apply() {
    throw notImplemented('share-mount: not available in this build yet');
  },
};
