import t from 'tap';
import { backoffDelay, mayRetry, type BackoffPolicy } from '../../../src/agent/backoff.js';
import { permanent, transient } from '../../../src/agent/errors.js';
import { planTasks, runTasks, type Task } from '../../../src/agent/task.js';
import { makeTestContext } from '../../helpers/context.js';

const policy: BackoffPolicy = { initialMs: 1000, factor: 2, maxDelayMs: 60_000, maxAttempts: 10, maxElapsedMs: 10 * 60_000 };

t.test('backoff schedule stays within bounds', async (t) => {
  const cases = [
    { attempt: 1, lo: 500, hi: 1000 },
    { attempt: 2, lo: 1000, hi: 2000 },
    { attempt: 5, lo: 8000, hi: 16000 },
    { attempt: 7, lo: 30000, hi: 60000 },
    { attempt: 30, lo: 30000, hi: 60000 },
  ];
  for (const c of cases) {
    for (const r of [0, 0.5, 0.999999, 1]) {
      const d = backoffDelay(policy, c.attempt, () => r);
      t.ok(d >= c.lo && d <= c.hi, `attempt ${c.attempt}, random ${r}: ${d} in [${c.lo}, ${c.hi}]`);
    }
  }
  t.not(
    backoffDelay(policy, 3, () => 0),
    backoffDelay(policy, 3, () => 1),
    'jitter varies the delay',
  );
  t.equal(mayRetry(policy, 10, 0, 1000), false, 'attempt cap');
  t.equal(mayRetry(policy, 2, 9.9 * 60_000, 60_000), false, 'time cap');
  t.equal(mayRetry(policy, 2, 0, 1000), true);
});

t.test('equal jitter: a retry waits from half the ceiling up to the ceiling, never less', async (t) => {
  const cases = [
    { name: 'lowest draw', random: 0, delay: 4000 },
    { name: 'middle draw', random: 0.5, delay: 6000 },
    { name: 'highest draw', random: 1, delay: 8000 },
  ];
  for (const c of cases)
    t.equal(
      backoffDelay(policy, 4, () => c.random),
      c.delay,
      `attempt 4 (ceiling 8 s), ${c.name}`,
    );
});

function fakeTask(id: string, script: (attempt: number) => 'ok' | 'change' | Error, applied: string[]): Task {
  let attempt = 0;
  let done = false;
  return {
    id,
    description: id,
    async check() {
      attempt++;
      const step = done ? 'ok' : script(attempt);
      if (step instanceof Error) throw step;
      return { changes: step === 'change' ? [`${id} differs`] : [] };
    },
    async apply() {
      applied.push(id);
      done = true;
    },
  };
}

t.test('transient errors retry with backoff, permanent ones stop what needs them', async (t) => {
  const cases = [
    {
      name: 'transient then success',
      tasks: (a: string[]) => [
        fakeTask('a', (n) => (n < 3 ? transient('DC not reachable yet') : 'change'), a),
        fakeTask('b', () => 'ok', a),
      ],
      statuses: ['ok', 'ok'],
      applied: ['a'],
      attemptsA: 3,
    },
    {
      name: 'permanent stops at once; a task without declared needs needs every earlier one: not run',
      tasks: (a: string[]) => [fakeTask('a', () => permanent('bad password', { fix: 'fix it' }), a), fakeTask('b', () => 'change', a)],
      statuses: ['failed', 'skipped'],
      applied: [],
      attemptsA: 1,
    },
    {
      name: 'unknown errors count as permanent',
      tasks: (a: string[]) => [fakeTask('a', () => new Error('bug'), a)],
      statuses: ['failed'],
      applied: [],
      attemptsA: 1,
    },
    {
      name: 'transient forever gives up at the cap',
      tasks: (a: string[]) => [fakeTask('a', () => transient('still down'), a)],
      statuses: ['failed'],
      applied: [],
      attemptsA: 10,
    },
  ];
  for (const c of cases) {
    const { ctx } = await makeTestContext();
    const applied: string[] = [];
    const outcomes = await runTasks(c.tasks(applied), ctx, { backoff: policy, random: () => 0.5 });
    t.same(
      outcomes.map((o) => o.status),
      c.statuses,
      `${c.name}: statuses`,
    );
    t.same(applied, c.applied, `${c.name}: applied`);
    t.equal(outcomes[0] && 'attempts' in outcomes[0] ? outcomes[0].attempts : 0, c.attemptsA, `${c.name}: attempts`);
  }
});

t.test('declared needs: a failed task stops only the tasks that need it, and those that need them', async (t) => {
  const { ctx } = await makeTestContext();
  const applied: string[] = [];
  const needing = (task: Task, needs: string[]): Task => ({ ...task, needs: () => needs });
  const outcomes = await runTasks(
    [
      needing(
        fakeTask('preflight', () => 'ok', applied),
        [],
      ),
      needing(
        fakeTask('join', () => permanent('re-check failed'), applied),
        ['preflight'],
      ),
      needing(
        fakeTask('kerberos-thing', () => 'change', applied),
        ['join'],
      ),
      needing(
        fakeTask('after-that', () => 'change', applied),
        ['kerberos-thing'],
      ),
      needing(
        fakeTask('share', () => 'change', applied),
        [],
      ),
    ],
    ctx,
    { backoff: policy },
  );
  t.same(
    outcomes.map((o) => [o.id, o.status, o.status === 'skipped' ? o.reason : '']),
    [
      ['preflight', 'ok', ''],
      ['join', 'failed', ''],
      ['kerberos-thing', 'skipped', 'not run: needs join (failed)'],
      ['after-that', 'skipped', 'not run: needs kerberos-thing (not run)'],
      ['share', 'ok', ''],
    ],
  );
  t.same(applied, ['share'], 'the task that needs nothing of the failed one still ran');
  const bad = needing(
    fakeTask('x', () => 'ok', applied),
    ['later'],
  );
  await t.rejects(
    runTasks([bad, fakeTask('later', () => 'ok', applied)], ctx, { backoff: policy }),
    /needs later, which do not come before it/,
  );
  const [alone] = await runTasks(
    [
      needing(
        fakeTask('share', () => 'ok', applied),
        ['join'],
      ),
    ],
    ctx,
    { backoff: policy },
  );
  t.equal(alone?.status, 'ok', 'a task re-run alone (a daemon repair) runs: what it needs is not in this list');
});

t.test('apply that does not converge is a failure', async (t) => {
  const { ctx } = await makeTestContext();
  const stubborn: Task = { id: 's', description: 's', check: async () => ({ changes: ['x'] }), apply: async () => undefined };
  const [o] = await runTasks([stubborn], ctx, { backoff: policy });
  t.equal(o?.status, 'failed');
  t.match(o?.status === 'failed' ? o.error.message : '', /still differs after apply/);
});

t.test('plan reports each check and applies nothing', async (t) => {
  const { ctx } = await makeTestContext();
  const applied: string[] = [];
  const entries = await planTasks(
    [
      fakeTask('a', () => 'change', applied),
      fakeTask('b', () => 'ok', applied),
      fakeTask('c', () => transient('dns'), applied),
      { ...fakeTask('d', () => 'ok', applied), skip: () => 'no share configured' },
    ],
    ctx,
  );
  t.same(
    entries.map((e) => e.status),
    ['would-change', 'up-to-date', 'unknown', 'skipped'],
  );
  t.same(applied, []);
});
