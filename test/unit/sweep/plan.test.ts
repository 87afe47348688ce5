import t from 'tap';
import { renderReport } from '../../../src/app/commands/sweep.js';
import { defaultPrefix, planSweep, poolComputers, type PoolComputer } from '../../../src/tasks/sweep/plan.js';

const A = 'aaaaaaaa-0000-4000-8000-000000000001';
const B = 'bbbbbbbb-0000-4000-8000-000000000002';
const C = 'cccccccc-0000-4000-8000-000000000003';
const D = 'dddddddd-0000-4000-8000-000000000004';
const now = Date.parse('2026-06-01T00:00:00Z');
const DAY = 86_400_000;
/** Windows FILETIME of an epoch ms. */
const fileTime = (ms: number): string => String((BigInt(ms) + 11_644_473_600_000n) * 10_000n);

const entry = (name: string, description: string | undefined, pwdLastSet?: number) => ({
  dn: `CN=${name},OU=DSVM,DC=contoso,DC=test`,
  attrs: {
    samaccountname: [`${name}$`],
    ...(description ? { description: [description] } : {}),
    ...(pwdLastSet !== undefined ? { pwdlastset: [fileTime(pwdLastSet)] } : {}),
  },
});

t.test('the pool: prefix and stamp, nothing else', async (t) => {
  const pool = poolComputers(
    [
      entry('DSVMPOOL-1', `dsvm-agent vmId=${A}`, now),
      entry('DSVMPOOL-2', `DSVM-AGENT VMID=${B.toUpperCase()}`, now),
      entry('DSVMPOOL-3', 'hand-made server, keep'),
      entry('OTHERPOOL-1', `dsvm-agent vmId=${C}`, now),
      entry('DSVMPOOL-4', undefined),
    ],
    'DSVMPOOL-',
  );
  t.same(
    pool.map((c) => [c.name, c.vmId]),
    [
      ['DSVMPOOL-1', A],
      ['DSVMPOOL-2', B],
    ],
    'only stamped objects with the prefix; vmIds lower case',
  );
  t.equal(pool[0]?.passwordSetAt, now, 'pwdLastSet as epoch ms');
});

const pc = (name: string, vmId: string, passwordSetAt?: number): PoolComputer => ({ dn: `CN=${name}`, name, vmId, passwordSetAt });

t.test('existence from ARM: stale = not listed; the sweeper is the lowest live vmId', async (t) => {
  const pool = [pc('P-1', C), pc('P-2', A), pc('P-3', B), pc('P-4', D)];
  const cases = [
    { name: 'two vanished', live: [C, D, 'eeeeeeee-0000-4000-8000-00000000000e'], stale: ['P-2', 'P-3'], sweeper: C },
    { name: 'none vanished', live: [A, B, C, D], stale: [], sweeper: A },
    { name: 'ARM answers upper case', live: [A.toUpperCase(), D], stale: ['P-1', 'P-3'], sweeper: A },
    { name: 'all vanished: nobody live sweeps', live: [], stale: ['P-1', 'P-2', 'P-3', 'P-4'], sweeper: undefined },
  ];
  for (const c of cases) {
    const plan = planSweep(pool, { source: 'arm', liveVmIds: c.live });
    t.same(
      plan.stale.map((s) => s.name),
      c.stale,
      `${c.name}: stale`,
    );
    t.equal(plan.sweeper, c.sweeper, `${c.name}: sweeper`);
  }
});

t.test('without ARM: stale = machine password older than the limit', async (t) => {
  const pool = [pc('P-1', A, now - 46 * DAY), pc('P-2', B, now - 29 * DAY), pc('P-3', C, undefined), pc('P-4', D, now - 44 * DAY)];
  const plan = planSweep(pool, { source: 'password-age', maxAgeMs: 45 * DAY, now });
  t.same(
    plan.stale.map((s) => [s.name, s.reason]),
    [
      ['P-1', 'machine password 46 days old (limit 45)'],
      ['P-3', 'machine password never set'],
    ],
  );
  t.equal(plan.sweeper, B, 'the lowest vmId among those renewing their password');
});

t.test('the default prefix is this VM name up to its last "-"', async (t) => {
  t.equal(defaultPrefix('DSVMPOOL-1Z'), 'DSVMPOOL-');
  t.equal(defaultPrefix('LONG-POOL-NA-3'), 'LONG-POOL-NA-');
  t.equal(defaultPrefix('DSVM0001'), undefined);
  t.equal(defaultPrefix(undefined), undefined);
});

t.test('the report says who sweeps and what it did', async (t) => {
  const plan = planSweep([pc('P-1', A), pc('P-2', B)], { source: 'arm', liveVmIds: [B] });
  const base = { ...plan, prefix: 'P-', base: 'OU=DSVM,DC=contoso,DC=test', deleted: [], failed: [] };
  t.match(
    renderReport({ ...base, self: B, sweeping: true, dryRun: true }),
    /stale: P-1 \(vmId aaaa.*would delete\n.*dry run: nothing changed/s,
  );
  t.match(renderReport({ ...base, self: C, sweeping: false, dryRun: false }), new RegExp(`not the sweeper: VM ${B} sweeps`));
  t.match(renderReport({ ...base, self: B, sweeping: true, dryRun: false, deleted: ['P-1'] }), /P-1 .*: deleted/);
});
