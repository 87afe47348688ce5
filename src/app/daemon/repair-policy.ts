import { messageOf } from '../../agent/errors.js';
import { isTransientReason } from '../../agent/transient.js';
import type { CheckRecord } from './check-state.js';

/**
 * When a failing check may start a repair. One bad run never does: a DC that
 * stalls for a minute fails every VM's checks at the same moment, and a
 * repair on the first failure made the whole pool restart sssd, remount and
 * rejoin together (a rejoin resets the machine password and replaces the
 * keytab). The rules:
 * 1. only failures of the non-transient kind count (timeouts, an unreachable
 *    DC or KDC are transient: agent/transient.ts), and only
 *    `failuresBeforeRepair` of them in a row;
 * 2. each VM then waits a random part of `jitterSec`, so a pool that does see
 *    a real fault together does not hit the DC together;
 * 3. the failure must still be there after that wait, and a repair that
 *    asks the domain first (a rejoin: Repair.trust) needs a fresh
 *    `adcli testjoin` saying the trust is broken: not "fine", not "cannot
 *    reach the DC".
 */
export interface RepairPolicy {
  failuresBeforeRepair: number;
  jitterSec: number;
}

/** Rule 1: whether this check record calls for a repair. */
export function shouldRepair(rec: Pick<CheckRecord, 'state' | 'transient' | 'hardFailures'>, policy: RepairPolicy): boolean {
  return rec.state === 'fail' && rec.transient !== true && (rec.hardFailures ?? 0) >= policy.failuresBeforeRepair;
}

/** Rule 2: how long this VM waits before a repair, uniformly spread over [0, jitterSec). */
export function repairJitterMs(policy: RepairPolicy, random: () => number = Math.random): number {
  return Math.floor(Math.max(0, Math.min(1, random())) * policy.jitterSec * 1000);
}

export type Confirmation = { go: true } | { go: false; reason: string };

/** What rule 3 asks: the check run again, or, for a repair that asks the domain first, the DC's own word on the trust. */
export interface ConfirmDeps {
  recheck(): Promise<Pick<CheckRecord, 'state' | 'transient' | 'reason'>>;
  trust?(): Promise<{ ok: boolean; reason: string }>;
}

/** Rule 3: the last look before a repair starts. */
export async function confirmRepair(d: ConfirmDeps): Promise<Confirmation> {
  if (d.trust) return confirmTrust(d.trust);
  const again = await d.recheck();
  if (again.state !== 'fail') return { go: false, reason: `the check passed again (${again.reason})` };
  if (again.transient) return { go: false, reason: `the latest failure is transient (${again.reason})` };
  return { go: true };
}

async function confirmTrust(testJoin: () => Promise<{ ok: boolean; reason: string }>): Promise<Confirmation> {
  let trust: { ok: boolean; reason: string };
  try {
    trust = await testJoin();
  } catch (err) {
    // testJoin throws when it cannot reach the DC: nothing says the trust broke.
    return {
      go: false,
      reason: `a fresh adcli testjoin could not ask the domain (${messageOf(err)}): the trust is not known to be broken`,
    };
  }
  if (trust.ok) return { go: false, reason: `a fresh adcli testjoin says the trust is fine (${trust.reason})` };
  if (isTransientReason(trust.reason)) return { go: false, reason: `a fresh adcli testjoin could not reach the domain (${trust.reason})` };
  return { go: true };
}
