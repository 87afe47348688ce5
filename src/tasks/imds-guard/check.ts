import { messageOf } from '../../agent/errors.js';
import type { TaskContext } from '../../agent/task.js';
import { fail, ok, type HealthCheck } from '../../agent/check.js';
import { guardSpec, guardWanted } from './desired.js';
import { listGuard } from './nft.js';
import { desiredTable, guardDifferences, type GuardSpec } from './ruleset.js';

const FIX = 'fix: `systemctl restart dsvm-agent-imds-guard` or `dsvm-agent provision` reloads it';

/** The spec first boot installed (state), so the check needs no NSS lookup; the config's own otherwise. */
async function installedSpec(ctx: TaskContext): Promise<GuardSpec> {
  return ctx.state.facts.imdsGuard ?? guardSpec(ctx.cfg, ctx.run);
}

/**
 * The IMDS guard is still in the kernel. A firewall reload that starts with
 * `flush ruleset` (nftables.service, some admin scripts) drops every table,
 * ours included, and would silently hand the managed identity back to every
 * local user: this check makes that visible in status, health detail and
 * metrics.
 */
export const imdsGuardCheck: HealthCheck = {
  id: 'imds-guard',
  description: 'only root and the allowed groups reach IMDS (nftables table inet dsvm_agent)',
  defaultSchedule: '0 */5 * * * *',
  timeoutMs: 20_000,
  skip: (ctx) => {
    const { on, why } = guardWanted(ctx.cfg);
    return on ? undefined : why;
  },
  async run(ctx) {
    try {
      const listing = await listGuard(ctx.run);
      if (listing.state === 'missing-nft')
        return fail(`nft is not installed: IMDS is open to every local user (fix: apt-get install nftables)`);
      if (listing.state === 'absent')
        return fail(`the IMDS guard table is gone (a firewall reload flushed it?): every local user can use the managed identity (${FIX})`);
      const spec = await installedSpec(ctx);
      const diff = guardDifferences(listing.table, desiredTable(spec));
      if (diff.length) return fail(`the IMDS guard table was changed: ${diff.join('; ')} (${FIX})`);
      return ok(`only root${spec.gids.length ? ` and gid ${spec.gids.join(', ')}` : ''} reach ${spec.address}:${spec.port}`);
    } catch (err) {
      return fail(`the IMDS guard could not be read: ${messageOf(err)}`);
    }
  },
};
