import type { LoginOutcome } from './index.js';

/** Exit code of `dsvm-agent login` for an outcome: 0 done or nothing to do, 1 failed or refused, 3 not finished yet (retry). */
export function exitCodeForOutcome(o: Pick<LoginOutcome, 'status'>): number {
  switch (o.status) {
    case 'done':
    case 'skipped':
      return 0;
    case 'partial':
    case 'pending':
      return 3;
    default:
      return 1;
  }
}
