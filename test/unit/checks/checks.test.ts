import t from 'tap';
import { cronPatternProblem } from '../../../src/agent/config-values.js';
import { clockVerdict } from '../../../src/tasks/preflight/clock-check.js';
import { diskVerdict } from '../../../src/tasks/host/disk-space.js';
import { checksOf } from '../../../src/agent/capability.js';
import { capabilities } from '../../../src/app/capabilities.js';
import { quotaVerdict } from '../../../src/tasks/share-mount/quota-check.js';
import type { HealthCheck } from '../../../src/agent/check.js';
import { testCapabilities, type CapabilityDoors } from '../daemon/doubles.js';
import { makeTestContext } from '../../helpers/context.js';
import type { FakeCommand } from '../../helpers/fake-runner.js';

const GiB = 2 ** 30;
const MiB = 2 ** 20;
const healthChecks = checksOf(capabilities);

/** The check of that id, declared by its capability, over fake doors (see deps). */
const byId = (id: string, doors: CapabilityDoors = deps()): HealthCheck => {
  const c = checksOf(testCapabilities(doors)).find((x) => x.id === id);
  if (!c) throw new Error(`no check ${id}`);
  return c;
};

function deps(over: CapabilityDoors = {}): CapabilityDoors {
  return {
    testJoin: async () => ({ ok: true, reason: 'joined' }),
    probeShare: async () => ({ mounted: true, responsive: true, source: '//a/b', reason: '' }),
    shareUsage: async () => ({ usedBytes: 1 * GiB, quotaBytes: 100 * GiB }),
    clockOffset: async () => ({ offsetMs: 200, source: 'dc1' }),
    ...over,
  };
}

t.test('pure verdicts', async (t) => {
  const cases = [
    { name: 'quota: half used', got: quotaVerdict(50 * GiB, 100 * GiB).state, want: 'ok' },
    { name: 'quota: 89.9 % is ok', got: quotaVerdict(89.9 * GiB, 100 * GiB).state, want: 'ok' },
    { name: 'quota: 90 % warns', got: quotaVerdict(90 * GiB, 100 * GiB).state, want: 'warn' },
    { name: 'quota: full fails', got: quotaVerdict(100 * GiB, 100 * GiB).state, want: 'fail' },
    { name: 'quota: no quota reported', got: quotaVerdict(5 * GiB, 0).state, want: 'ok' },
    { name: 'clock: 2 s', got: clockVerdict(2000, 'dc').state, want: 'ok' },
    { name: 'clock: -90 s warns', got: clockVerdict(-90_000, 'dc').state, want: 'warn' },
    { name: 'clock: 5 min fails (Kerberos)', got: clockVerdict(300_000, 'dc').state, want: 'fail' },
    { name: 'disk: plenty', got: diskVerdict('/var', 20 * GiB, 40 * GiB).state, want: 'ok' },
    { name: 'disk: 900 MiB warns', got: diskVerdict('/var', 900 * MiB, 5 * GiB).state, want: 'warn' },
    { name: 'disk: 5 % of a big disk warns', got: diskVerdict('/var', 5 * GiB, 100 * GiB).state, want: 'warn' },
    { name: 'disk: 100 MiB fails', got: diskVerdict('/var', 100 * MiB, 50 * GiB).state, want: 'fail' },
  ];
  for (const c of cases) t.equal(c.got, c.want, c.name);
});

t.test('checks against fake doors', async (t) => {
  const getent = (db: string, name: string, exitCode: number, stdout = ''): FakeCommand => ({
    file: 'getent',
    args: [db, name],
    result: { exitCode, stdout },
  });
  const cases: Array<{
    name: string;
    check: string;
    config?: Record<string, unknown>;
    commands?: FakeCommand[];
    deps?: CapabilityDoors;
    sssdActive?: boolean;
    want: 'ok' | 'warn' | 'fail';
    reason?: RegExp;
  }> = [
    { name: 'trust ok', check: 'domain-trust', want: 'ok' },
    {
      name: 'trust broken',
      check: 'domain-trust',
      deps: { testJoin: async () => ({ ok: false, reason: 'keytab rejected' }) },
      want: 'fail',
      reason: /keytab rejected/,
    },
    {
      name: 'group resolves',
      check: 'identity-lookup',
      config: { domain: { allowGroups: ['dsvm-users'] } },
      commands: [getent('group', 'dsvm-users', 0, 'dsvm-users:*:1100:alice\n')],
      want: 'ok',
    },
    {
      name: 'group not found',
      check: 'identity-lookup',
      config: { domain: { allowGroups: ['dsvm-users'] } },
      commands: [getent('group', 'dsvm-users', 2)],
      want: 'fail',
      reason: /not found/,
    },
    {
      name: 'probe as user',
      check: 'identity-lookup',
      config: { health: { identityProbe: 'alice' } },
      commands: [getent('passwd', 'alice', 0, 'alice:*:1000:1000::/home/alice:/bin/bash\n')],
      want: 'ok',
    },
    {
      name: 'probe falls back to group',
      check: 'identity-lookup',
      config: { health: { identityProbe: 'dsvm-users' } },
      commands: [getent('passwd', 'dsvm-users', 2), getent('group', 'dsvm-users', 0, 'dsvm-users:*:1100:\n')],
      want: 'ok',
    },
    { name: 'sssd running', check: 'sssd', sssdActive: true, want: 'ok' },
    { name: 'sssd stopped', check: 'sssd', sssdActive: false, want: 'fail' },
    { name: 'share fine', check: 'share-mounted', want: 'ok' },
    {
      name: 'share not mounted',
      check: 'share-mounted',
      deps: { probeShare: async () => ({ mounted: false, responsive: false, reason: 'no entry in mountinfo' }) },
      want: 'fail',
      reason: /not mounted/,
    },
    {
      name: 'share hung',
      check: 'share-mounted',
      deps: { probeShare: async () => ({ mounted: true, responsive: false, reason: 'stat timed out' }) },
      want: 'fail',
      reason: /not responding/,
    },
    {
      name: 'quota 95 %',
      check: 'share-quota',
      deps: { shareUsage: async () => ({ usedBytes: 95 * GiB, quotaBytes: 100 * GiB }) },
      want: 'warn',
    },
    {
      name: 'clock far off',
      check: 'clock',
      deps: { clockOffset: async () => ({ offsetMs: -400_000, source: 'dc1' }) },
      want: 'fail',
      reason: /dc1/,
    },
  ];
  for (const c of cases) {
    const share = { share: { account: 'contosofiles', name: 'workspace', key: { file: '/etc/dsvm-agent/key' } } };
    const tc = await makeTestContext({ config: { ...share, ...(c.config ?? {}) }, commands: c.commands ?? [] });
    if (c.sssdActive) tc.services.active.add('sssd');
    const check = byId(c.check, deps(c.deps));
    t.equal(check.skip?.(tc.ctx), undefined, `${c.name}: applies`);
    const out = await check.run(tc.ctx);
    t.equal(out.state, c.want, `${c.name}: ${out.reason}`);
    if (c.reason) t.match(out.reason, c.reason, `${c.name}: reason`);
    t.same(tc.runner.unexpected, [], `${c.name}: no unexpected commands`);
  }
});

t.test('skips', async (t) => {
  const tc = await makeTestContext({ config: {} });
  const cases = [
    { check: 'share-mounted', skipped: true },
    { check: 'share-quota', skipped: true },
    { check: 'identity-lookup', skipped: true },
    { check: 'sssd', skipped: false },
    { check: 'disk-space', skipped: false },
  ];
  for (const c of cases)
    t.equal(byId(c.check).skip?.(tc.ctx) !== undefined, c.skipped, `${c.check} without share/groups: skipped=${c.skipped}`);
});

t.test('disk-space reads the root prefix', async (t) => {
  const tc = await makeTestContext();
  const { mkdir } = await import('node:fs/promises');
  await mkdir(tc.paths.under('/var'), { recursive: true });
  const out = await byId('disk-space').run(tc.ctx);
  t.match(out.reason, /^\/var: \d+ MiB free/);
});

t.test('every check has a valid default schedule and a bounded timeout', async (t) => {
  for (const c of healthChecks) {
    t.equal(cronPatternProblem(c.defaultSchedule), undefined, `${c.id}: ${c.defaultSchedule}`);
    t.ok(c.timeoutMs > 0 && c.timeoutMs <= 60_000, `${c.id}: timeout ${c.timeoutMs}`);
  }
  t.equal(new Set(healthChecks.map((c) => c.id)).size, healthChecks.length, 'ids are unique');
});
