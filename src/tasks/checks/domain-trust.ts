import { fail, ok, type HealthCheck } from './types.js';

/**
 * The machine account still works: the trust can break when the computer
 * object is deleted or its password reset in AD, and then every login fails.
 */
export const domainTrustCheck: HealthCheck = {
  id: 'domain-trust',
  description: 'the computer account and keytab still authenticate to the domain',
  defaultSchedule: '0 */5 * * * *',
  timeoutMs: 30_000,
  async run(ctx, deps) {
    const r = await deps.testJoin(ctx);
    return r.ok ? ok(r.reason || `joined to ${ctx.cfg.domain.name}`) : fail(r.reason || `not joined to ${ctx.cfg.domain.name}`);
  },
};
