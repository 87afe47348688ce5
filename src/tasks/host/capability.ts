import type { Capability } from '../../agent/capability.js';
import { diskSpaceCheck } from './disk-space.js';

/** The VM itself: what every other capability needs from it (local disk space). No first-boot work. */
export const host: Capability = {
  id: 'host',
  checks: [diskSpaceCheck],
};
