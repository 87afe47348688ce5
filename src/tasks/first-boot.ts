import type { Task } from '../agent/task.js';
import { domainJoinTask } from './domain-join/index.js';
import { preflightTask } from './preflight/index.js';
import { shareMountTask } from './share-mount/index.js';

/**
 * First-boot work, in order. The order matters:
 * 1. preflight proves DNS, the DC's ports, the clock and the secrets before
 *    anything is written, so a VM that cannot join changes nothing;
 * 2. domain-join needs preflight's facts and must come before the share,
 *    because Kerberos mounts need the machine's keytab and the share's
 *    owner/group may be a domain group that only resolves after the join;
 * 3. share-mount makes /data/workspace, which logins then rely on.
 * Each task is idempotent, so re-running the list on every boot is safe.
 */
export const firstBootTasks: readonly Task[] = [preflightTask, domainJoinTask, shareMountTask];
