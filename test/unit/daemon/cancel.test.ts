import t from 'tap';
import { ImdsClient } from '../../../src/agent/azure/imds.js';
import { checksOf } from '../../../src/agent/capability.js';
import { StateStore } from '../../../src/agent/state.js';
import type { Task, TaskContext } from '../../../src/agent/task.js';
import { capabilities } from '../../../src/app/capabilities.js';
import { Daemon } from '../../../src/app/daemon/daemon.js';
import { startFakes } from '../../fakes/index.js';
import { makeTestContext } from '../../helpers/context.js';
import { FakeOps, RecordingNotifier } from './doubles.js';

/** Never fires during a test: checks run only at start. */
const NEVER = '0 0 0 1 1 *';
const checksConfig = Object.fromEntries(checksOf(capabilities).map((c) => [c.id, { schedule: NEVER }]));

/** A first-boot task that works until its context's signal aborts, then fails as a command killed by it would. */
function taskUntilCancelled(): { task: Task; running: Promise<void>; reason: Promise<string> } {
  let started: () => void = () => undefined;
  let cancelled: (why: string) => void = () => undefined;
  const running = new Promise<void>((r) => (started = r));
  const reason = new Promise<string>((r) => (cancelled = r));
  const task: Task = {
    id: 'domain-join',
    description: 'a join that takes long',
    async check(ctx: TaskContext) {
      started();
      await new Promise<void>((r) => ctx.signal.addEventListener('abort', () => r(), { once: true }));
      cancelled(ctx.signal.reason instanceof Error ? ctx.signal.reason.message : String(ctx.signal.reason));
      throw new Error('adcli: killed');
    },
    async apply() {},
  };
  return { task, running, reason };
}

async function startDaemon(t: { teardown(fn: () => unknown): void }, config: Record<string, unknown>, imds?: string) {
  const tc = await makeTestContext({
    config: {
      health: { listen: '127.0.0.1:0', checks: checksConfig },
      repair: { jitterSec: 0 },
      scheduledEvents: { enabled: false },
      ...config,
    },
  });
  tc.ctx.clock = { now: () => Date.now(), sleep: async () => undefined };
  if (imds) tc.ctx.imds = new ImdsClient(imds, 2000);
  const work = taskUntilCancelled();
  const ops = new FakeOps();
  const daemon = await Daemon.start({
    ctx: tc.ctx,
    store: new StateStore(tc.paths.stateFile, tc.log),
    capabilities: ops.capabilities([work.task]),
    notifier: new RecordingNotifier(),
    ipc: false,
  });
  t.teardown(() => daemon.stop());
  return { tc, ops, daemon, work };
}

t.test("the daemon's stop cancels first boot in flight: not retried, not recorded as the task's error", async (t) => {
  const s = await startDaemon(t, {});
  await s.work.running;
  await s.daemon.stop();
  t.equal(await s.work.reason, 'the agent is stopping', 'the task saw its signal abort');
  await s.daemon.firstBootSettled;
  t.equal(s.tc.ctx.state.tasks['domain-join']?.lastError, undefined, 'no error recorded for the task');
  t.notMatch(s.tc.logLines.join('\n'), /first boot failed/, 'not reported as a failed first boot');
  t.equal(s.tc.ctx.signal.aborted, false, "the caller's own context is left alone");
});

t.test('a Terminate for this VM cancels first boot before the clean-up takes the lock', async (t) => {
  const fakes = await startFakes({ seed: { vm: { compute: { name: 'dsvmpool_3', vmScaleSetName: 'dsvmpool' } } } });
  t.teardown(() => fakes.close());
  const s = await startDaemon(t, { scheduledEvents: { enabled: true, pollSec: 1 } }, fakes.urls.imds);
  await s.work.running;
  const NotBefore = new Date(Date.now() + 5 * 60_000).toUTCString();
  fakes.state.seed({ scheduledEvents: [{ EventId: 'ours', EventType: 'Terminate', Resources: ['dsvmpool_3'], NotBefore }] });
  t.equal(await s.work.reason, 'Terminate ours: this VM is leaving', 'first boot saw the Terminate');
  // First boot held the lock; cancelled, it lets the clean-up have it at once instead of after a quarter of its budget.
  for (const end = Date.now() + 10_000; fakes.state.approvals().length === 0 && Date.now() < end;) {
    await new Promise((r) => setTimeout(r, 20));
  }
  t.same(
    fakes.state.approvals().map((a) => a.EventId),
    ['ours'],
    'approved',
  );
  t.same(s.ops.calls, ['closeHandlesAndUnmount', 'leaveDomain'], 'the clean-up itself was not cancelled');
});
