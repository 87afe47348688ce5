import { clockCheck } from './clock.js';
import { diskSpaceCheck } from './disk-space.js';
import { domainTrustCheck } from './domain-trust.js';
import { identityLookupCheck } from './identity-lookup.js';
import { imdsGuardCheck } from './imds-guard.js';
import { shareMountedCheck } from './share-mounted.js';
import { shareQuotaCheck } from './share-quota.js';
import { sssdCheck } from './sssd.js';
import type { HealthCheck } from './types.js';

export type { CheckDeps, CheckOutcome, CheckState, HealthCheck, ShareProbe } from './types.js';

/**
 * The periodic checks. Unlike first boot, there is no order: none reads
 * another's result, so each runs on its own schedule, and a slow one (a hung
 * share, an unreachable DC) never holds the others back.
 */
export const healthChecks: readonly HealthCheck[] = [
  domainTrustCheck,
  identityLookupCheck,
  sssdCheck,
  shareMountedCheck,
  shareQuotaCheck,
  clockCheck,
  diskSpaceCheck,
  imdsGuardCheck,
];
