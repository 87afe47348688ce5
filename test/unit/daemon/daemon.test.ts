import t from 'tap';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { Daemon } from '../../../src/app/daemon/daemon.js';
import { callIpc } from '../../../src/agent/ipc.js';
import { ImdsClient } from '../../../src/agent/azure/imds.js';
import { startFakes } from '../../fakes/index.js';
import { StateStore } from '../../../src/agent/state.js';
import { transient } from '../../../src/agent/errors.js';
import type { Task } from '../../../src/agent/task.js';
import { checksOf } from '../../../src/agent/capability.js';
import { capabilities } from '../../../src/app/capabilities.js';
import { makeTestContext } from '../../helpers/context.js';
import { FakeOps, RecordingNotifier } from './doubles.js';
import { extensionView, parsePrometheus } from './parse.js';

/** Never fires during a test: checks run only at start and when the test asks. */
const NEVER = '0 0 0 1 1 *';
const checksConfig = Object.fromEntries(checksOf(capabilities).map((c) => [c.id, { schedule: NEVER }]));

function gatedTask(): { task: Task; release(): void } {
  let open = false;
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => (release = r));
  return {
    release: () => release(),
    task: {
      id: 'domain-join',
      description: 'fake join',
      async check() {
        await gate;
        return { changes: open ? [] : ['join'] };
      },
      async apply() {
        open = true;
      },
    },
  };
}

async function setup(t: { teardown(fn: () => unknown): void }, over: Record<string, unknown> = {}) {
  const tc = await makeTestContext({
    config: {
      share: { account: 'contosofiles', name: 'workspace', key: { file: '/etc/dsvm-agent/key' } },
      domain: { allowGroups: ['dsvm-users'] },
      health: {
        listen: '127.0.0.1:0',
        initializingGraceSec: 600,
        checks: checksConfig,
        unhealthyOn: ['domain-trust', 'sssd', 'share-mounted'],
      },
      // One failure repairs here (these tests are about the rate limit); the policy has its own test below.
      repair: { maxAttempts: 2, windowSec: 3600, failuresBeforeRepair: 1, jitterSec: 0 },
      scheduledEvents: { enabled: false },
      ...over,
    },
    commands: [{ file: 'getent', result: { stdout: 'dsvm-users:*:1100:alice\n' } }],
  });
  tc.services.active.add('sssd');
  // The daemon's health clock is the wall clock: first boot's start (which
  // anchors the Initializing grace) must come from the same clock, or health
  // turns Unhealthy as soon as first boot records a start months "ago".
  // Backoff sleeps stay instant.
  tc.ctx.clock = { now: () => Date.now(), sleep: async () => undefined };
  const ops = new FakeOps();
  const notifier = new RecordingNotifier();
  const gated = gatedTask();
  const store = new StateStore(tc.paths.stateFile, tc.log);
  const daemon = await Daemon.start({ ctx: tc.ctx, store, capabilities: ops.capabilities([gated.task]), notifier });
  t.teardown(() => daemon.stop());
  const get = async (path: string) => {
    const res = await fetch(`${daemon.healthUrl}${path}`);
    return { status: res.status, text: await res.text(), type: res.headers.get('content-type') };
  };
  const health = async () => JSON.parse((await get('/health')).text) as Record<string, unknown>;
  const settle = () => new Promise((r) => setTimeout(r, 30));
  // A repair takes the first-boot lock before it runs (as in production): wait for it, not a fixed time.
  const repaired = async (count: number) => {
    for (const end = Date.now() + 5000; ops.calls.length < count && Date.now() < end;) await settle();
    await settle();
  };
  return { tc, ops, notifier, gated, daemon, store, get, health, settle, repaired };
}

t.test('lifecycle: Initializing during first boot, Healthy after, READY first and STOPPING last', async (t) => {
  const s = await setup(t);
  t.same(s.notifier.messages[0]?.READY, '1', 'READY=1 once serving, before first boot is done');
  const init = await s.get('/health');
  t.equal(init.status, 200, 'always 200');
  t.equal(init.type, 'application/json');
  t.equal(JSON.parse(init.text).state, 'Initializing', init.text);
  t.equal(extensionView(init.text).state, 'Unknown', 'the extension keeps its own Initializing');
  const statuses = () => s.notifier.messages.map((m) => m.STATUS ?? '').join('|');
  for (let i = 0; i < 100 && !/first boot: domain-join/.test(statuses()); i++) await s.settle();
  t.match(statuses(), /first boot: domain-join/, 'STATUS names the task');
  s.gated.release();
  await s.daemon.firstBootSettled;
  await s.settle();
  const h = await s.health();
  t.equal(h.ApplicationHealthState, 'Healthy', String(h.reason));
  t.equal((h.firstBoot as { state: string }).state, 'done');
  t.ok((await s.store.read())?.firstBootCompletedAt, 'first boot recorded in the state file');
  t.match(s.notifier.messages.at(-1)?.STATUS ?? '', /^Healthy/, 'STATUS follows health');
  const metrics = parsePrometheus((await s.get('/metrics')).text);
  t.equal(metrics.samples.find((x) => x.name === 'dsvm_agent_first_boot_completed')?.value, 1);
  t.ok(
    metrics.samples.some((x) => x.name === 'dsvm_agent_first_boot_duration_seconds'),
    'first-boot duration exported',
  );
  const started = Date.now();
  await s.daemon.stop();
  t.ok(Date.now() - started < 5000, `stopped in ${Date.now() - started} ms`);
  t.same(s.notifier.messages.at(-1), { STOPPING: '1', STATUS: 'stopping' }, 'STOPPING=1 last');
  await t.rejects(fetch(`${s.daemon.healthUrl}/health`), 'the endpoint is closed');
});

t.test('a failing check turns health Unhealthy, repairs are rate limited, recovery resets', async (t) => {
  const s = await setup(t);
  s.gated.release();
  await s.daemon.firstBootSettled;
  await s.settle();
  s.ops.share = { mounted: false, responsive: false, reason: 'not in mountinfo' };
  await s.daemon.runner.run('share-mounted');
  await s.repaired(1);
  let h = await s.health();
  t.equal(h.ApplicationHealthState, 'Unhealthy');
  t.match(String(h.reason), /share-mounted failing/);
  t.same(s.ops.calls, ['remountShare'], 'one repair per failing run');
  await s.daemon.runner.run('share-mounted');
  await s.repaired(2);
  await s.daemon.runner.run('share-mounted');
  await s.settle();
  await s.daemon.runner.run('share-mounted');
  await s.settle();
  t.same(s.ops.calls, ['remountShare', 'remountShare'], 'stops at repair.maxAttempts');
  h = await s.health();
  const repair = (h.repairs as Array<Record<string, unknown>>)[0];
  t.equal(repair?.gaveUp, true, 'health says the repairs stopped');
  t.match(String(repair?.lastError), /Host is down/);
  t.match(s.tc.logLines.join('\n'), /gave up remount-share after 2 attempts/, 'logged');
  const m = parsePrometheus((await s.get('/metrics')).text);
  const repairs = (result: string) => m.samples.find((x) => x.name === 'dsvm_agent_repairs_total' && x.labels.result === result)?.value;
  t.same([repairs('failed'), repairs('gave-up')], [2, 1], 'counted');
  s.ops.share = { mounted: true, responsive: true, reason: '' };
  await s.daemon.runner.run('share-mounted');
  await s.settle();
  h = await s.health();
  t.equal(h.ApplicationHealthState, 'Healthy');
  t.equal((h.repairs as Array<Record<string, unknown>>)[0]?.gaveUp, false, 'recovery lifts the latch');
});

t.test('a successful repair is checked again at once', async (t) => {
  const s = await setup(t);
  s.gated.release();
  await s.daemon.firstBootSettled;
  await s.settle();
  s.ops.remountWorks = true;
  s.ops.share = { mounted: false, responsive: false, reason: 'gone' };
  await s.daemon.runner.run('share-mounted');
  await s.repaired(1);
  await new Promise((r) => setTimeout(r, 100));
  const h = await s.health();
  t.equal(h.ApplicationHealthState, 'Healthy', 'the re-check after the remount cleared it');
  t.same(s.ops.calls, ['remountShare']);
});

t.test('a DC that stalls never starts a rejoin; a broken trust does, after N failures and a fresh testjoin', async (t) => {
  const s = await setup(t, { repair: { maxAttempts: 3, windowSec: 3600, failuresBeforeRepair: 3, jitterSec: 0 } });
  s.gated.release();
  await s.daemon.firstBootSettled;
  await s.settle();
  const trust = async () => {
    await s.daemon.runner.run('domain-trust');
    await s.settle();
  };
  // The DC is silent: testjoin throws its transient error, or the check outlives its timeout.
  s.ops.testJoin = async () => {
    throw transient('adcli testjoin: timed out talking to the domain', { reason: 'dc-unreachable' });
  };
  for (let i = 0; i < 10; i++) await trust();
  let rec = s.daemon.runner.records.get('domain-trust')!;
  t.equal(rec.state, 'fail', 'health still shows the failure');
  t.equal(rec.transient, true, 'classified transient');
  const view = ((await s.health()).checks as Array<Record<string, unknown>>).find((c) => c.id === 'domain-trust');
  t.equal(view?.transient, true, 'health says the failure is transient');
  t.same(s.ops.calls, [], 'ten transient failures: no repair');
  // The DC answers that the machine account is refused, twice: below the threshold.
  s.ops.joined = false;
  s.ops.testJoin = async () => ({ ok: false, reason: 'the DC refused the machine account DSVM-1: Preauthentication failed' });
  await trust();
  await trust();
  t.same(s.ops.calls, [], 'two hard failures: no repair yet');
  // A transient failure in between breaks the row.
  s.ops.testJoin = async () => {
    throw transient('Cannot contact any KDC for realm CONTOSO.TEST');
  };
  await trust();
  rec = s.daemon.runner.records.get('domain-trust')!;
  t.equal(rec.hardFailures, undefined, 'the row starts again after a transient failure');
  // Three hard failures in a row, and the fresh testjoin before the rejoin still says broken.
  s.ops.testJoin = async () => ({ ok: false, reason: 'the DC refused the machine account DSVM-1: Preauthentication failed' });
  await trust();
  await trust();
  t.same(s.ops.calls, [], 'two in a row again: still no repair');
  await trust();
  await s.repaired(1);
  t.same(s.ops.calls, ['rejoin'], 'third hard failure in a row, confirmed by a fresh testjoin: one rejoin');
  t.match(s.tc.logLines.join('\n'), /trying rejoin/);
});

t.test('the last look before a rejoin: a fresh testjoin that passes, or cannot reach the DC, stops it', async (t) => {
  for (const c of [
    {
      name: 'trust fine again',
      last: async () => ({ ok: true, reason: 'joined as DSVM-1' }),
      log: /not starting rejoin: a fresh adcli testjoin says the trust is fine/,
    },
    {
      name: 'DC unreachable',
      last: async (): Promise<{ ok: boolean; reason: string }> => {
        throw transient('adcli testjoin failed: Cannot contact any KDC');
      },
      log: /not starting rejoin: a fresh adcli testjoin could not ask the domain/,
    },
  ]) {
    const s = await setup(t, { repair: { maxAttempts: 3, windowSec: 3600, failuresBeforeRepair: 1, jitterSec: 0 } });
    s.gated.release();
    await s.daemon.firstBootSettled;
    await s.settle();
    let calls = 0;
    // The check's own run sees a broken trust; the repair's fresh look sees the other answer.
    s.ops.testJoin = async () => (calls++ === 0 ? { ok: false, reason: 'the DC refused the machine account DSVM-1' } : c.last());
    await s.daemon.runner.run('domain-trust');
    await new Promise((r) => setTimeout(r, 100));
    t.same(s.ops.calls, [], `${c.name}: no rejoin`);
    t.match(s.tc.logLines.join('\n'), c.log, `${c.name}: says why`);
    const m = parsePrometheus((await s.get('/metrics')).text);
    t.equal(
      m.samples.find((x) => x.name === 'dsvm_agent_repairs_total' && x.labels.action === 'rejoin' && x.labels.result === 'skipped')?.value,
      1,
      `${c.name}: counted as skipped`,
    );
    await s.daemon.stop();
  }
});

t.test('no repairs during first boot or when disabled', async (t) => {
  for (const c of [
    { name: 'during first boot', over: {}, release: false },
    { name: 'repair.enabled false', over: { repair: { enabled: false } }, release: true },
  ]) {
    const s = await setup(t, c.over);
    if (c.release) {
      s.gated.release();
      await s.daemon.firstBootSettled;
    }
    s.ops.share = { mounted: false, responsive: false, reason: 'gone' };
    await s.daemon.runner.run('share-mounted');
    await s.settle();
    t.same(s.ops.calls, [], `${c.name}: no repair`);
    await s.daemon.stop();
  }
});

t.test('status over the control socket is the /health body', async (t) => {
  const s = await setup(t);
  s.gated.release();
  await s.daemon.firstBootSettled;
  await s.settle();
  const res = await callIpc(s.tc.paths.socketFile, { op: 'status' }, 2000);
  const viaHttp = await s.health();
  t.ok(res.ok);
  const viaIpc = res.ok ? (res.result as Record<string, unknown>) : {};
  delete viaIpc.generatedAt;
  delete viaHttp.generatedAt;
  t.same(viaIpc, viaHttp);
});

t.test('/health answers fast from the cache while a check hangs', async (t) => {
  const s = await setup(t);
  s.gated.release();
  await s.daemon.firstBootSettled;
  s.ops.probeShare = () => new Promise(() => undefined);
  void s.daemon.runner.run('share-mounted');
  const times: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t0 = performance.now();
    await s.get('/health');
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  // The 50 ms p99 bound is measured in the lab and the benchmark, on a quiet
  // machine; here (parallel test jobs) the point is that nothing waits on the
  // hung check: it never settles, so any waiting request would time out.
  const median = times[100] ?? Infinity;
  const max = times.at(-1) ?? Infinity;
  t.ok(median < 50, `median ${median.toFixed(2)} ms`);
  t.ok(max < 1000, `max ${max.toFixed(2)} ms`);
  const other = await s.get('/nope');
  t.equal(other.status, 404);
  const post = await fetch(`${s.daemon.healthUrl}/health`, { method: 'POST' });
  t.equal(post.status, 405);
});

t.test('login over the socket reaches the handler and is measured', async (t) => {
  const s = await setup(t);
  const res = await callIpc(s.tc.paths.socketFile, { op: 'login', user: 'alice', deadlineMs: 1000 }, 2000);
  t.same(
    res,
    { ok: false, error: 'this daemon was started without login handling: run `dsvm-agent login --user NAME` directly' },
    'clear error without a handler',
  );
  await s.daemon.stop();
  const tc = await makeTestContext({
    config: { health: { listen: '127.0.0.1:0', checks: checksConfig }, scheduledEvents: { enabled: false } },
  });
  const seen: unknown[] = [];
  const d = await Daemon.start({
    ctx: tc.ctx,
    store: new StateStore(tc.paths.stateFile, tc.log),
    capabilities: new FakeOps().capabilities(),
    notifier: new RecordingNotifier(),
    logins: {
      handle: async (user, opts) => {
        seen.push([user, opts]);
        return { user, status: 'done' };
      },
      finishDeferred: async () => [],
    },
  });
  t.teardown(() => d.stop());
  const ok = await callIpc(tc.paths.socketFile, { op: 'login', user: 'alice', deadlineMs: 1500 }, 2000);
  t.same(ok, { ok: true, result: { user: 'alice', status: 'done' } });
  t.same(seen, [['alice', { deadlineMs: 1500, shareHealthy: undefined }]], 'no share configured: shareHealthy undefined');
  const m = parsePrometheus(d.metricsText());
  t.equal(m.samples.find((x) => x.name === 'dsvm_agent_logins_total' && x.labels.outcome === 'done')?.value, 1);
  t.equal(m.samples.find((x) => x.name === 'dsvm_agent_login_duration_seconds_count')?.value, 1);
});

t.test('refuses a non-loopback listen address unless allowed', async (t) => {
  const { startHealthServer } = await import('../../../src/app/daemon/server.js');
  await t.rejects(
    startHealthServer('10.0.0.1:8642', { allowNonLoopback: false }, { health: () => ({}), metrics: () => '' }),
    /not a loopback address/,
  );
});

t.test('the metrics textfile is written at approval, not at the next check (a Preempt gives 30 s)', async (t) => {
  const fakes = await startFakes({ seed: { vm: { compute: { name: 'dsvmpool_3', vmScaleSetName: 'dsvmpool' } } } });
  t.teardown(() => fakes.close());
  const textfile = '/var/lib/prometheus/node-exporter/dsvm-agent.prom';
  const { tc, gated } = await setup(t, {
    azure: { imdsEndpoint: fakes.urls.imds },
    scheduledEvents: { enabled: true, pollSec: 1 },
  });
  tc.ctx.cfg.health.metricsTextfile = textfile;
  tc.ctx.imds = new ImdsClient(fakes.urls.imds, 2000);
  const file = tc.paths.under(textfile);
  await mkdir(path.dirname(file), { recursive: true });
  gated.release();
  const read = () => readFile(file, 'utf8').catch(() => '');
  const approvedLine = /^dsvm_agent_scheduled_events_approved_total 1$/m;
  // The start's check results are written once (2 s after them); then nothing changes until the event.
  for (const end = Date.now() + 8000; !(await read()) && Date.now() < end;) await new Promise((r) => setTimeout(r, 100));
  t.notMatch(await read(), approvedLine, 'before the event: nothing approved');
  fakes.state.seed({
    scheduledEvents: [
      { EventId: 'evict', EventType: 'Preempt', Resources: ['dsvmpool_3'], NotBefore: new Date(Date.now() + 30_000).toUTCString() },
    ],
  });
  for (const end = Date.now() + 8000; !fakes.state.approvals().length && Date.now() < end;) await new Promise((r) => setTimeout(r, 50));
  t.equal(fakes.state.approvals().length, 1, 'approved');
  for (const end = Date.now() + 1000; !approvedLine.test(await read()) && Date.now() < end;) await new Promise((r) => setTimeout(r, 20));
  t.match(await read(), approvedLine, 'the approval is in the textfile within 1 s');
});
