import type { Capability } from '../../agent/capability.js';
import { clockCheck, type ReadClockOffset } from './clock-check.js';
import { clockOffset, preflightTask } from './index.js';

/**
 * Preflight: proves DNS, the DC's ports, the clock and the secrets before
 * first boot writes anything; afterwards it watches the clock, read from the
 * DC preflight's own SRV order picks. Tests give their own clock reading.
 */
export function preflightCapability(readClock: ReadClockOffset = (ctx) => clockOffset(ctx)): Capability {
  return {
    id: 'preflight',
    firstBoot: { task: preflightTask, needs: () => [] },
    checks: [clockCheck(readClock)],
  };
}

export const preflight: Capability = preflightCapability();
