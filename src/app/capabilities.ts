import { firstBootTasksOf, type Capability } from '../agent/capability.js';
import type { Task } from '../agent/task.js';
import { domainJoin } from '../tasks/domain-join/capability.js';
import { host } from '../tasks/host/capability.js';
import { imdsGuard } from '../tasks/imds-guard/capability.js';
import { preflight } from '../tasks/preflight/capability.js';
import { scheduledEvents } from '../tasks/scheduled-events/capability.js';
import { shareMount } from '../tasks/share-mount/capability.js';
import { sweep } from '../tasks/sweep/capability.js';
import { workspace } from '../tasks/workspace/capability.js';

/**
 * Every capability of the agent, in first-boot order. The order matters:
 * 1. preflight proves DNS, the DC's ports, the clock and the secrets before
 *    anything is written, so a VM that cannot join changes nothing;
 * 2. domain-join needs preflight's facts (the DC it found) and must come
 *    before the share, because Kerberos mounts need the machine's keytab and
 *    the share's owner/group may be a domain name that only resolves after
 *    the join;
 * 3. share-mount makes /data/workspace, which logins then rely on.
 * The capabilities after it have no first-boot task: host (the VM's own
 * checks), workspace (the logins the daemon serves), scheduled-events (the
 * daemon's watcher that runs the scale-in clean-up), sweep (a command).
 * Each task declares what it needs: when one fails, the tasks that do not
 * need it still run (a key-mounted share is mounted even if the join's
 * re-check failed), provision still fails, and status names the failed task.
 * Each task is idempotent, so re-running the list on every boot is safe.
 * The scale-in clean-up and deprovision go in the reverse order.
 *
 * Adding a capability: a folder in src/tasks/ exporting its manifest, and
 * one line here (docs/architecture.md).
 */
export const capabilities: readonly Capability[] = [preflight, domainJoin, imdsGuard, shareMount, host, workspace, scheduledEvents, sweep];

/** The first-boot list `provision`, `plan` and the daemon run. */
export const firstBootTasks: readonly Task[] = firstBootTasksOf(capabilities);
