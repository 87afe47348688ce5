import t from 'tap';
import { declareMetrics, renderMetrics } from '../../../src/app/daemon/agent-metrics.js';
import type { CheckRecord } from '../../../src/app/daemon/check-state.js';
import { evaluateHealth, healthBody, type DaemonSnapshot } from '../../../src/app/daemon/health.js';
import { Metrics } from '../../../src/app/daemon/metrics.js';
import { newRepairRecord } from '../../../src/app/daemon/repair.js';
import type { CheckId } from '../../../src/agent/config-schema.js';
import { extensionView, parsePrometheus } from './parse.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const rec = (id: CheckId, state: CheckRecord['state'], reason = `${id} ${state}`): CheckRecord => ({
  id,
  state,
  since: new Date(T0).toISOString(),
  reason,
  lastRunAt: new Date(T0).toISOString(),
  lastDurationMs: 12,
  streak: 1,
  runs: 1,
});
const snap = (over: Partial<DaemonSnapshot> = {}): DaemonSnapshot => ({
  checks: [rec('domain-trust', 'ok'), rec('sssd', 'ok'), rec('share-mounted', 'ok'), rec('share-quota', 'ok'), rec('clock', 'ok')],
  repairs: [],
  repairFor: new Map([['share-mounted', 'remount-share']]),
  firstBoot: { state: 'done' },
  graceAnchor: T0,
  unhealthyOn: ['domain-trust', 'sssd', 'share-mounted'],
  ...over,
});
const grace = { initializingGraceSec: 600 };

t.test('Unhealthy rules', async (t) => {
  const cases: Array<{ name: string; snap: DaemonSnapshot; at?: number; want: string; failing?: string[] }> = [
    { name: 'all ok', snap: snap(), want: 'Healthy' },
    {
      name: 'a failing check in unhealthyOn',
      snap: snap({ checks: [rec('sssd', 'fail'), rec('share-mounted', 'ok')] }),
      want: 'Unhealthy',
      failing: ['sssd'],
    },
    {
      name: 'a failing check not in unhealthyOn',
      snap: snap({ checks: [rec('share-quota', 'fail'), rec('sssd', 'ok')] }),
      want: 'Healthy',
    },
    { name: 'warnings never count', snap: snap({ checks: [rec('sssd', 'warn'), rec('share-mounted', 'warn')] }), want: 'Healthy' },
    { name: 'pending does not count', snap: snap({ checks: [rec('sssd', 'pending')] }), want: 'Healthy' },
    {
      name: 'two failing',
      snap: snap({ checks: [rec('domain-trust', 'fail'), rec('share-mounted', 'fail')] }),
      want: 'Unhealthy',
      failing: ['domain-trust', 'share-mounted'],
    },
    {
      name: 'first boot running, in grace, checks failing',
      snap: snap({ firstBoot: { state: 'running', task: 'domain-join' }, checks: [rec('sssd', 'fail')] }),
      at: T0 + 599_000,
      want: 'Initializing',
    },
    {
      name: 'first boot running past grace',
      snap: snap({ firstBoot: { state: 'running', task: 'domain-join' } }),
      at: T0 + 600_000,
      want: 'Unhealthy',
    },
    { name: 'waiting for provision in grace', snap: snap({ firstBoot: { state: 'waiting' } }), at: T0 + 1000, want: 'Initializing' },
    { name: 'first boot failed', snap: snap({ firstBoot: { state: 'failed', error: 'bad password' } }), at: T0 + 1000, want: 'Unhealthy' },
  ];
  for (const c of cases) {
    const v = evaluateHealth(c.snap, grace, c.at ?? T0 + 10_000);
    t.equal(v.state, c.want, `${c.name}: ${v.reason}`);
    if (c.failing) t.same(v.failing, c.failing, `${c.name}: failing list`);
  }
});

t.test('health body contract', async (t) => {
  const cases: Array<{ name: string; snap: DaemonSnapshot; at?: number; extension: string; state: string }> = [
    { name: 'healthy', snap: snap(), extension: 'Healthy', state: 'Healthy' },
    {
      name: 'unhealthy',
      snap: snap({ checks: [rec('share-mounted', 'fail', 'not mounted')] }),
      extension: 'Unhealthy',
      state: 'Unhealthy',
    },
    // The extension must see no valid state while initializing, so its own grace shows Initializing.
    {
      name: 'initializing',
      snap: snap({ firstBoot: { state: 'running', task: 'preflight', attempt: 2 } }),
      extension: 'Unknown',
      state: 'Initializing',
    },
    {
      name: 'with repairs and terminating',
      snap: snap({
        repairs: [{ ...newRepairRecord('remount-share'), gaveUp: true, lastError: 'mount error(112)' }],
        terminating: { eventId: 'E1', step: 'leaving the domain' },
      }),
      extension: 'Healthy',
      state: 'Healthy',
    },
  ];
  for (const c of cases) {
    const body = healthBody(c.snap, grace, c.at ?? T0 + 1000);
    const text = JSON.stringify(body);
    t.equal(extensionView(text).state, c.extension, `${c.name}: what the extension reads`);
    t.equal(body.state, c.state, `${c.name}: detail state`);
    const top = Object.keys(body);
    t.equal(
      top.filter((k) => k.toLowerCase() === 'applicationhealthstate').length,
      1,
      `${c.name}: exactly one ApplicationHealthState key in any case`,
    );
    t.notOk(
      top.some((k) => k.toLowerCase() === 'custommetrics'),
      `${c.name}: no customMetrics key`,
    );
    t.same(top.slice(0, 6), ['ApplicationHealthState', 'state', 'reason', 'firstBoot', 'checks', 'repairs'], `${c.name}: key order`);
    const checks = body.checks as Array<Record<string, unknown>>;
    for (const ch of checks) {
      t.same(
        Object.keys(ch).sort(),
        ['affectsHealth', 'durationMs', 'id', 'lastRepair', 'lastRunAt', 'reason', 'since', 'state'],
        `${c.name}: check ${String(ch.id)} shape`,
      );
    }
  }
  const body = healthBody(
    snap({
      repairs: [{ ...newRepairRecord('remount-share'), lastAttemptAt: new Date(T0).toISOString(), lastResult: 'failed', gaveUp: true }],
    }),
    grace,
    T0,
  );
  const shareView = (body.checks as Array<Record<string, unknown>>).find((c) => c.id === 'share-mounted');
  t.same(
    shareView?.lastRepair,
    { action: 'remount-share', at: new Date(T0).toISOString(), result: 'failed', gaveUp: true },
    'last repair shows on the check it serves',
  );
  t.same(
    body,
    {
      ApplicationHealthState: 'Healthy',
      state: 'Healthy',
      reason: 'all checks pass',
      firstBoot: { state: 'done' },
      checks: body.checks,
      repairs: [
        {
          action: 'remount-share',
          gaveUp: true,
          attemptsInWindow: 0,
          lastAttemptAt: new Date(T0).toISOString(),
          lastResult: 'failed',
          lastError: null,
          succeeded: 0,
          failed: 0,
        },
      ],
      generatedAt: new Date(T0).toISOString(),
    },
    'exact shape',
  );
});

t.test('extension parser itself (the contract test must be able to fail)', async (t) => {
  const cases = [
    { text: '{"applicationhealthstate":"Healthy"}', want: 'Healthy' },
    { text: '{"ApplicationHealthState":"healthy"}', want: 'Unknown' },
    { text: '{"ApplicationHealthState":"Healthy","customMetrics":{"a":1}}', want: 'Unknown' },
    { text: '{"ApplicationHealthState":"Healthy","customMetrics":"{\\"a\\":1}"}', want: 'Healthy' },
    { text: 'OK', want: 'Unknown' },
  ];
  for (const c of cases) t.equal(extensionView(c.text).state, c.want, c.text);
});

t.test('metrics render and parse back', async (t) => {
  const m = new Metrics();
  declareMetrics(m);
  m.inc('dsvm_agent_check_runs_total', { check: 'sssd', state: 'ok' });
  m.inc('dsvm_agent_check_runs_total', { check: 'sssd', state: 'ok' });
  m.inc('dsvm_agent_repairs_total', { action: 'restart-sssd', result: 'failed' });
  m.inc('dsvm_agent_logins_total', { outcome: 'done' });
  for (const ms of [3, 40, 700, 20_000]) m.observe('dsvm_agent_login_duration_seconds', {}, ms / 1000);
  m.set('dsvm_agent_first_boot_duration_seconds', {}, 12.5);
  m.set('dsvm_agent_check_state', { check: 'weird"name\\x\ny' }, 1);
  const text = renderMetrics(m, snap({ checks: [rec('sssd', 'fail'), rec('clock', 'warn')] }), grace, T0 + 1000);
  const { samples, types } = parsePrometheus(text);
  const get = (name: string, labels: Record<string, string> = {}): number | undefined =>
    samples.find(
      (s) =>
        s.name === name &&
        Object.entries(labels).every(([k, v]) => s.labels[k] === v) &&
        Object.keys(s.labels).length === Object.keys(labels).length,
    )?.value;
  const cases: Array<[string, Record<string, string>, number]> = [
    ['dsvm_agent_health_state', { state: 'Unhealthy' }, 1],
    ['dsvm_agent_health_state', { state: 'Healthy' }, 0],
    ['dsvm_agent_check_state', { check: 'sssd', state: 'fail' }, 1],
    ['dsvm_agent_check_state', { check: 'sssd', state: 'ok' }, 0],
    ['dsvm_agent_check_state', { check: 'clock', state: 'warn' }, 1],
    ['dsvm_agent_check_duration_seconds', { check: 'sssd' }, 0.012],
    ['dsvm_agent_check_runs_total', { check: 'sssd', state: 'ok' }, 2],
    ['dsvm_agent_repairs_total', { action: 'restart-sssd', result: 'failed' }, 1],
    ['dsvm_agent_logins_total', { outcome: 'done' }, 1],
    ['dsvm_agent_login_duration_seconds_bucket', { le: '0.005' }, 1],
    ['dsvm_agent_login_duration_seconds_bucket', { le: '0.05' }, 2],
    ['dsvm_agent_login_duration_seconds_bucket', { le: '1' }, 3],
    ['dsvm_agent_login_duration_seconds_bucket', { le: '+Inf' }, 4],
    ['dsvm_agent_login_duration_seconds_count', {}, 4],
    ['dsvm_agent_first_boot_duration_seconds', {}, 12.5],
    ['dsvm_agent_first_boot_completed', {}, 1],
  ];
  for (const [name, labels, want] of cases) t.equal(get(name, labels), want, `${name}${JSON.stringify(labels)}`);
  t.equal(types.get('dsvm_agent_login_duration_seconds'), 'histogram');
  t.equal(types.get('dsvm_agent_repairs_total'), 'counter');
  t.notOk(
    samples.some((s) => s.labels.check === 'weird"name\\x\ny'),
    'check_state is rebuilt from the snapshot each render',
  );
  const again = new Metrics();
  again.declare('x_total', 'help with \\ and\nnewline', 'counter');
  again.inc('x_total', { l: 'a"b\\c\nd' });
  const parsed = parsePrometheus(again.render());
  t.equal(parsed.samples[0]?.labels.l, 'a"b\\c\nd', 'label escaping round-trips');
  t.throws(() => parsePrometheus('x 1\n'), /before its TYPE/, 'the parser rejects untyped samples');
});
