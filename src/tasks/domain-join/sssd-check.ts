import { fail, ok, type HealthCheck } from '../../agent/check.js';

/** The unit name sssd runs under (systemd) and the key the direct service manager knows. */
export const SSSD_UNIT = 'sssd';

/** sssd is what NSS and PAM ask about domain users; without it no domain login works. */
export const sssdCheck: HealthCheck = {
  id: 'sssd',
  description: 'sssd is running',
  defaultSchedule: '*/30 * * * * *',
  timeoutMs: 15_000,
  async run(ctx) {
    return (await ctx.services.isActive(SSSD_UNIT))
      ? ok('sssd is running')
      : fail('sssd is not running (fix: `systemctl status sssd`; the agent restarts it when repair is enabled)');
  },
};
