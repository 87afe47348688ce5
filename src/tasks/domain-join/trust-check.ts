import { fail, ok, transientFail, type HealthCheck } from '../../agent/check.js';
import type { TaskContext } from '../../agent/task.js';
import { isTransientReason } from '../../agent/transient.js';

/**
 * The machine account still works: the trust can break when the computer
 * object is deleted or its password reset in AD, and then every login fails.
 */
export const domainTrustCheck = (testJoin: (ctx: TaskContext) => Promise<{ ok: boolean; reason: string }>): HealthCheck => ({
  id: 'domain-trust',
  description: 'the computer account and keytab still authenticate to the domain',
  defaultSchedule: '0 */5 * * * *',
  timeoutMs: 30_000,
  async run(ctx) {
    // An unreachable DC is thrown as a transient error (the check runner
    // classifies it); an answer that only reads like one is classified here.
    const r = await testJoin(ctx);
    if (r.ok) return ok(r.reason || `joined to ${ctx.cfg.domain.name}`);
    const reason = r.reason || `not joined to ${ctx.cfg.domain.name}`;
    return isTransientReason(reason) ? transientFail(reason) : fail(reason);
  },
});
