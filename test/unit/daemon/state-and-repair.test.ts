import t from 'tap';
import { advance, pendingRecord, type CheckRecord } from '../../../src/app/daemon/check-state.js';
import { newRepairRecord, RepairLimiter } from '../../../src/app/daemon/repair.js';
import type { CheckState } from '../../../src/agent/check.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const iso = (s: number): string => new Date(T0 + s * 1000).toISOString();

t.test('check state machine: since changes only on transitions', async (t) => {
  const cases: Array<{
    name: string;
    steps: Array<[number, CheckState, string]>;
    wantState: CheckState;
    wantSince: string;
    wantStreak: number;
  }> = [
    { name: 'first result leaves pending', steps: [[10, 'ok', 'fine']], wantState: 'ok', wantSince: iso(10), wantStreak: 1 },
    {
      name: 'same state keeps since',
      steps: [
        [10, 'ok', 'a'],
        [40, 'ok', 'b'],
        [70, 'ok', 'c'],
      ],
      wantState: 'ok',
      wantSince: iso(10),
      wantStreak: 3,
    },
    {
      name: 'ok to fail moves since',
      steps: [
        [10, 'ok', 'a'],
        [40, 'fail', 'down'],
      ],
      wantState: 'fail',
      wantSince: iso(40),
      wantStreak: 1,
    },
    {
      name: 'fail with changing reason keeps since',
      steps: [
        [10, 'fail', 'x 1'],
        [40, 'fail', 'x 2'],
      ],
      wantState: 'fail',
      wantSince: iso(10),
      wantStreak: 2,
    },
    {
      name: 'warn then ok',
      steps: [
        [10, 'warn', 'w'],
        [40, 'ok', 'o'],
      ],
      wantState: 'ok',
      wantSince: iso(40),
      wantStreak: 1,
    },
    {
      name: 'flap back',
      steps: [
        [10, 'ok', 'o'],
        [40, 'fail', 'f'],
        [70, 'ok', 'o'],
      ],
      wantState: 'ok',
      wantSince: iso(70),
      wantStreak: 1,
    },
  ];
  for (const c of cases) {
    let r: CheckRecord = pendingRecord('sssd', T0);
    for (const [s, state, reason] of c.steps)
      r = advance(r, { state, reason }, { startedAt: T0 + s * 1000 - 50, finishedAt: T0 + s * 1000 });
    t.equal(r.state, c.wantState, `${c.name}: state`);
    t.equal(r.since, c.wantSince, `${c.name}: since`);
    t.equal(r.streak, c.wantStreak, `${c.name}: streak`);
    t.equal(r.reason, c.steps[c.steps.length - 1]?.[2], `${c.name}: latest reason`);
    t.equal(r.lastDurationMs, 50, `${c.name}: duration`);
    t.equal(r.runs, c.steps.length, `${c.name}: runs`);
  }
});

t.test('repair rate limiting', async (t) => {
  const HOUR = 3600_000;
  type Step = { at: number; op: 'try' | 'recover'; error?: string; wantAllowed?: boolean };
  const cases: Array<{ name: string; max: number; steps: Step[]; wantGaveUp: boolean }> = [
    {
      name: 'three failures in the window, the fourth is refused and latches',
      max: 3,
      steps: [
        { at: 0, op: 'try', error: 'e', wantAllowed: true },
        { at: 60_000, op: 'try', error: 'e', wantAllowed: true },
        { at: 120_000, op: 'try', wantAllowed: true },
        { at: 180_000, op: 'try', wantAllowed: false },
        { at: 2 * HOUR, op: 'try', wantAllowed: false },
      ],
      wantGaveUp: true,
    },
    {
      name: 'attempts spread wider than the window never latch',
      max: 2,
      steps: [
        { at: 0, op: 'try', wantAllowed: true },
        { at: HOUR + 1, op: 'try', wantAllowed: true },
        { at: 2 * HOUR + 2, op: 'try', wantAllowed: true },
      ],
      wantGaveUp: false,
    },
    {
      name: 'a recovery forgets earlier attempts',
      max: 2,
      steps: [
        { at: 0, op: 'try', wantAllowed: true },
        { at: 10, op: 'recover' },
        { at: 20, op: 'try', wantAllowed: true },
        { at: 30, op: 'try', wantAllowed: true },
        { at: 40, op: 'try', wantAllowed: false },
      ],
      wantGaveUp: true,
    },
    {
      name: 'a recovery lifts the latch',
      max: 1,
      steps: [
        { at: 0, op: 'try', wantAllowed: true },
        { at: 10, op: 'try', wantAllowed: false },
        { at: 20, op: 'recover' },
        { at: 30, op: 'try', wantAllowed: true },
      ],
      wantGaveUp: false,
    },
  ];
  for (const c of cases) {
    const limiter = new RepairLimiter(c.max, HOUR);
    const rec = newRepairRecord('remount-share');
    c.steps.forEach((s, i) => {
      if (s.op === 'recover') return limiter.recovered(rec);
      const d = limiter.decide(rec, s.at);
      t.equal(d.allowed, s.wantAllowed, `${c.name}: step ${i} allowed`);
      if (d.allowed) {
        limiter.started(rec, s.at);
        limiter.finished(rec, s.error);
      } else t.match(d.reason, /gave up remount-share after \d+ attempts/, `${c.name}: step ${i} says why`);
    });
    t.equal(rec.gaveUp, c.wantGaveUp, `${c.name}: gave up`);
  }
  const limiter = new RepairLimiter(3, HOUR);
  const rec = newRepairRecord('rejoin');
  limiter.started(rec, 0);
  limiter.finished(rec, "adcli: Couldn't authenticate");
  limiter.started(rec, 1);
  limiter.finished(rec);
  t.same(
    [rec.succeeded, rec.failed, rec.lastResult, rec.lastError],
    [1, 1, 'ok', undefined],
    'counts results, clears the last error on success',
  );
});
