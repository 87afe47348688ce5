import type { Config } from '../agent/config-schema.js';
import type { Task } from '../agent/task.js';
import { domainJoinTask } from './domain-join/index.js';
import { imdsGuardTask } from './imds-guard/index.js';
import { preflightTask } from './preflight/index.js';
import { shareMountTask } from './share-mount/index.js';
import { shareMode } from './share-mount/options.js';

/** `task` with the earlier tasks it needs under a config (see Task.needs). */
const step = (task: Task, needs: (cfg: Config) => readonly string[]): Task => ({ ...task, needs });

/**
 * Does the share need the join? A Kerberos mount authenticates with the
 * machine's keytab and the users' tickets; a share owned by a user or group
 * given by name may name a domain one, which resolves only once the machine
 * is joined and sssd runs (a local name would do without it, but telling
 * the two apart needs a look-up; the dependency matters only when the join
 * failed). A key mount with numeric ids, and NFS, need nothing from the domain.
 */
export function shareNeedsJoin(cfg: Config): boolean {
  const share = cfg.share;
  if (!share) return false;
  const mode = shareMode(share);
  if (mode === 'smb-kerberos') return true;
  return mode === 'smb-key' && [share.uid, share.gid].some((id) => typeof id === 'string');
}

/**
 * First-boot work, in order. The order matters:
 * 1. preflight proves DNS, the DC's ports, the clock and the secrets before
 *    anything is written, so a VM that cannot join changes nothing;
 * 2. domain-join needs preflight's facts (the DC it found) and must come
 *    before the share, because Kerberos mounts need the machine's keytab and
 *    the share's owner/group may be a domain name that only resolves after
 *    the join;
 * 3. share-mount makes /data/workspace, which logins then rely on.
 * Each task declares what it needs: when one fails, the tasks that do not
 * need it still run (a key-mounted share is mounted even if the join's
 * re-check failed), provision still fails, and status names the failed task.
 * Each task is idempotent, so re-running the list on every boot is safe.
 */
export const firstBootTasks: readonly Task[] = [
  step(preflightTask, () => []),
  step(domainJoinTask, () => ['preflight']),
  step(imdsGuardTask, (cfg) => (cfg.azure.imdsAccess.allowGroups.some((g) => typeof g === 'string') ? ['domain-join'] : [])),
  step(shareMountTask, (cfg) => (shareNeedsJoin(cfg) ? ['domain-join'] : [])),
];
