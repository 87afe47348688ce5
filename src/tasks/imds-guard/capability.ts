import type { Capability } from '../../agent/capability.js';
import type { Config } from '../../agent/config-schema.js';
import { imdsGuardCheck } from './check.js';
import { imdsGuardTask, undoImdsGuard } from './index.js';

/** Groups given by name resolve only once the machine is joined and sssd runs. */
const needsJoin = (cfg: Config): boolean => cfg.azure.imdsAccess.allowGroups.some((g) => typeof g === 'string');

/** The IMDS guard: only root and the allowed groups reach the managed identity. */
export const imdsGuard: Capability = {
  id: 'imds-guard',
  firstBoot: { task: imdsGuardTask, needs: (cfg) => (needsJoin(cfg) ? ['domain-join'] : []) },
  checks: [imdsGuardCheck],
  deprovision: {
    describe: () => [
      'remove the IMDS guard, if any: nftables table inet dsvm_agent, its boot unit and rule file (IMDS is then open to every local user again)',
    ],
    undo: (ctx) => undoImdsGuard(ctx),
  },
};
