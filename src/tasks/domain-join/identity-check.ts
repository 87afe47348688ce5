import { summarize } from '../../agent/runner.js';
import type { TaskContext } from '../../agent/task.js';
import { fail, ok, transientFail, type HealthCheck } from '../../agent/check.js';

/** The name to resolve: the configured probe, else the first allowed group. */
export function identityTarget(ctx: TaskContext): { name: string; db: 'passwd' | 'group' } | undefined {
  if (ctx.cfg.health.identityProbe) return { name: ctx.cfg.health.identityProbe, db: 'passwd' };
  const group = ctx.cfg.domain.allowGroups?.[0];
  return group ? { name: group, db: 'group' } : undefined;
}

/**
 * Users resolve through NSS (sssd): if this fails, nobody can log in even
 * though sssd looks alive (offline, broken cache, lost trust).
 */
export const identityLookupCheck: HealthCheck = {
  id: 'identity-lookup',
  description: 'a domain user or group resolves through NSS',
  defaultSchedule: '15 * * * * *',
  timeoutMs: 20_000,
  skip: (ctx) => (identityTarget(ctx) ? undefined : 'no health.identityProbe and no domain.allowGroups to look up'),
  async run(ctx) {
    const target = identityTarget(ctx);
    if (!target) return ok('nothing to look up');
    // A configured probe may name a user or a group: try passwd first, then group.
    const dbs = ctx.cfg.health.identityProbe ? (['passwd', 'group'] as const) : ([target.db] as const);
    let last = '';
    let timedOut = false;
    for (const db of dbs) {
      const r = await ctx.run({ file: 'getent', args: [db, target.name], timeoutMs: 15_000 });
      timedOut ||= r.timedOut;
      if (r.exitCode === 0 && r.stdout.trim() !== '') return ok(`${db} ${target.name} resolves`);
      // getent exits 2 for "not found"; anything else is the lookup itself failing.
      last = r.exitCode === 2 ? `${db} ${target.name} not found` : `getent ${db} ${target.name}: ${summarize(r)}`;
    }
    // A lookup that hangs is sssd waiting on a silent DC: transient. "Not found" is a real answer.
    return (timedOut ? transientFail : fail)(
      `${last} (fix: check sssd and the domain controller; \`sssctl domain-status ${ctx.cfg.domain.name}\`)`,
    );
  },
};
