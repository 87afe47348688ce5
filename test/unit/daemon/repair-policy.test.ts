import t from 'tap';
import { CheckRunner } from '../../../src/app/daemon/check-runner.js';
import { advance, pendingRecord, type CheckRecord } from '../../../src/app/daemon/check-state.js';
import { confirmRepair, repairJitterMs, shouldRepair } from '../../../src/app/daemon/repair-policy.js';
import { permanent, transient } from '../../../src/agent/errors.js';
import { isTransientError, isTransientReason } from '../../../src/agent/transient.js';
import type { CheckOutcome, HealthCheck } from '../../../src/agent/check.js';
import { makeTestContext } from '../../helpers/context.js';

const policy = { failuresBeforeRepair: 3, jitterSec: 60 };

t.test('failures in a row: only the non-transient kind counts, anything else breaks the row', async (t) => {
  const cases: { name: string; outcomes: CheckOutcome[]; hard: number | undefined; repair: boolean }[] = [
    { name: 'one failure', outcomes: [{ state: 'fail', reason: 'x' }], hard: 1, repair: false },
    { name: 'three failures', outcomes: Array(3).fill({ state: 'fail', reason: 'x' }), hard: 3, repair: true },
    {
      name: 'ten transient failures',
      outcomes: Array(10).fill({ state: 'fail', reason: 'timeout', transient: true }),
      hard: undefined,
      repair: false,
    },
    {
      name: 'two, a transient one, two',
      outcomes: [
        { state: 'fail', reason: 'x' },
        { state: 'fail', reason: 'x' },
        { state: 'fail', reason: 't', transient: true },
        { state: 'fail', reason: 'x' },
        { state: 'fail', reason: 'x' },
      ],
      hard: 2,
      repair: false,
    },
    {
      name: 'two, a pass, three',
      outcomes: [
        ...Array(2).fill({ state: 'fail', reason: 'x' }),
        { state: 'ok', reason: 'y' },
        ...Array(3).fill({ state: 'fail', reason: 'x' }),
      ],
      hard: 3,
      repair: true,
    },
    { name: 'warn never counts', outcomes: Array(5).fill({ state: 'warn', reason: 'w' }), hard: undefined, repair: false },
  ];
  for (const c of cases) {
    let rec: CheckRecord = pendingRecord('domain-trust', 0);
    for (const o of c.outcomes) rec = advance(rec, o, { startedAt: 0, finishedAt: 1 });
    t.equal(rec.hardFailures, c.hard, `${c.name}: count`);
    t.equal(shouldRepair(rec, policy), c.repair, `${c.name}: repair`);
  }
});

t.test('jitter spreads over [0, jitterSec)', async (t) => {
  t.equal(
    repairJitterMs(policy, () => 0),
    0,
  );
  t.equal(
    repairJitterMs(policy, () => 0.5),
    30_000,
  );
  t.ok(repairJitterMs(policy, () => 0.999999) < 60_000);
  t.equal(
    repairJitterMs({ ...policy, jitterSec: 0 }, () => 0.7),
    0,
    'jitterSec 0: at once',
  );
  const seen = new Set(Array.from({ length: 200 }, () => Math.floor(repairJitterMs(policy) / 6000)));
  t.ok(seen.size >= 8, `Math.random spreads across the window (${seen.size} of 10 buckets)`);
});

t.test('the last look before a repair', async (t) => {
  const broken = async () => ({ ok: false, reason: 'the DC refused the machine account DSVM-1: Preauthentication failed' });
  const fail = async () => ({ state: 'fail' as const, reason: 'gone' });
  const cases: {
    name: string;
    action: 'rejoin' | 'remount-share';
    testJoin?: () => Promise<{ ok: boolean; reason: string }>;
    recheck?: () => Promise<Pick<CheckRecord, 'state' | 'transient' | 'reason'>>;
    go: boolean;
    reason?: RegExp;
  }[] = [
    { name: 'rejoin: trust broken', action: 'rejoin', testJoin: broken, go: true },
    {
      name: 'rejoin: trust fine',
      action: 'rejoin',
      testJoin: async () => ({ ok: true, reason: 'joined' }),
      go: false,
      reason: /says the trust is fine/,
    },
    {
      name: 'rejoin: testjoin cannot reach the DC (thrown)',
      action: 'rejoin',
      testJoin: async () => {
        throw transient('adcli testjoin: timed out talking to the domain');
      },
      go: false,
      reason: /could not ask the domain/,
    },
    {
      name: 'rejoin: testjoin answer reads as unreachable',
      action: 'rejoin',
      testJoin: async () => ({ ok: false, reason: 'adcli testjoin: Cannot contact any KDC for realm' }),
      go: false,
      reason: /could not reach the domain/,
    },
    { name: 'remount: still failing', action: 'remount-share', recheck: fail, go: true },
    {
      name: 'remount: passes again',
      action: 'remount-share',
      recheck: async () => ({ state: 'ok', reason: 'mounted' }),
      go: false,
      reason: /passed again/,
    },
    {
      name: 'remount: now transient',
      action: 'remount-share',
      recheck: async () => ({ state: 'fail', reason: 'no answer', transient: true }),
      go: false,
      reason: /transient/,
    },
  ];
  for (const c of cases) {
    // The rejoin is the repair that asks the domain first (its manifest's Repair.trust).
    const got = await confirmRepair({
      ...(c.action === 'rejoin' ? { trust: c.testJoin ?? (() => Promise.reject(new Error('not asked'))) } : {}),
      recheck: c.recheck ?? (() => Promise.reject(new Error('not asked'))),
    });
    t.equal(got.go, c.go, c.name);
    if (!got.go && c.reason) t.match(got.reason, c.reason, `${c.name}: reason`);
  }
});

t.test('classification of failures', async (t) => {
  const cases: { name: string; err: unknown; want: boolean }[] = [
    { name: 'AgentError transient', err: transient('whatever'), want: true },
    { name: 'AgentError permanent, even with timeout words', err: permanent('Preauthentication failed after Timeout'), want: false },
    { name: 'plain error: KDC unavailable', err: new Error('kinit: KDC unavailable'), want: true },
    { name: 'plain error: LDAP down', err: new Error("Can't contact LDAP server"), want: true },
    { name: 'plain error: refused account', err: new Error('Client not found in Kerberos database'), want: false },
    { name: 'not an error', err: 'x', want: false },
  ];
  for (const c of cases) t.equal(isTransientError(c.err), c.want, c.name);
  t.ok(isTransientReason('adcli testjoin: Cannot contact any KDC for realm CONTOSO.TEST'));
  t.notOk(isTransientReason('the DC refused the machine account DSVM-1: Preauthentication failed'));
});

t.test('the check runner marks timeouts and thrown transient errors transient', async (t) => {
  const tc = await makeTestContext();
  const mk = (id: HealthCheck['id'], run: HealthCheck['run'], timeoutMs = 1000): HealthCheck => ({
    id,
    description: id,
    defaultSchedule: '0 0 0 1 1 *',
    timeoutMs,
    run,
  });
  const checks = [
    mk('domain-trust', async () => {
      throw transient('adcli testjoin: timed out talking to the domain');
    }),
    mk('sssd', () => new Promise(() => undefined), 20),
    mk('clock', async () => {
      throw permanent('clock: bad answer');
    }),
  ];
  const runner = new CheckRunner({ ctx: tc.ctx, checks, log: tc.log });
  const [trust, sssd, clock] = await Promise.all([runner.run('domain-trust'), runner.run('sssd'), runner.run('clock')]);
  t.match(trust, { state: 'fail', transient: true }, 'thrown transient');
  t.match(sssd, { state: 'fail', transient: true, reason: /no answer within 20 ms/ }, 'timeout');
  t.match(clock, { state: 'fail', hardFailures: 1 }, 'thrown permanent counts');
  t.equal(clock.transient, undefined);
});
