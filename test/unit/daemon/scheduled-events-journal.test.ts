import { readFile, writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { ImdsClient } from '../../../src/agent/azure/imds.js';
import {
  deleteRecordScript,
  JOURNAL_FILE,
  leavingEventsFor,
  parseJournal,
  ScheduledEventsWatcher,
  type ScheduledEventsDoc,
} from '../../../src/tasks/scheduled-events/index.js';
import { startFakes, type Seed } from '../../fakes/index.js';
import { makeTestContext } from '../../helpers/context.js';
import { terminateStepsOf } from '../../../src/agent/capability.js';
import { FakeOps } from './doubles.js';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];
type EventSeed = NonNullable<Seed['scheduledEvents']>[number];
const ev = (id: string, type: EventSeed['EventType'], resources: string[], extra: Partial<EventSeed> = {}): EventSeed => ({
  EventId: id,
  EventType: type,
  Resources: resources,
  ...extra,
});

t.test('Terminate and Preempt are ours to clean up for; nothing else is (pure)', async (t) => {
  const doc: ScheduledEventsDoc = {
    DocumentIncarnation: 3,
    Events: [
      { ...ev('T', 'Terminate', ['dsvmpool_3']), EventStatus: 'Scheduled' },
      { ...ev('P', 'Preempt', ['DSVMPOOL_3']), EventStatus: 'Scheduled' },
      { ...ev('P4', 'Preempt', ['dsvmpool_4']), EventStatus: 'Scheduled' },
      { ...ev('R', 'Reboot', ['dsvmpool_3']), EventStatus: 'Scheduled' },
      { ...ev('RD', 'Redeploy', ['dsvmpool_3']), EventStatus: 'Scheduled' },
      { ...ev('F', 'Freeze', ['dsvmpool_3']), EventStatus: 'Scheduled' },
    ],
  };
  t.same(
    leavingEventsFor(doc, ['dsvmpool_3']).map((e) => e.EventId),
    ['T', 'P'],
  );
});

t.test('the journal: unreadable is empty, never fatal (pure)', async (t) => {
  t.same(parseJournal(undefined), { version: 1, events: {} });
  t.same(parseJournal('{not json'), { version: 1, events: {} });
  t.same(parseJournal('{"version":2,"events":{}}'), { version: 1, events: {} });
  const ok = '{"version":1,"events":{"A":{"eventType":"Terminate","firstSeenAt":"x","steps":{"share":"done"}}}}';
  t.same(parseJournal(ok).events.A?.steps, { share: 'done' });
});

t.test("nsupdate's script deletes A and AAAA of the name, and refuses odd names (pure)", async (t) => {
  t.equal(
    deleteRecordScript('dc1.contoso.test', 'contoso.test', 'contoso.test', 'dsvm-1.contoso.test'),
    'server dc1.contoso.test\nrealm CONTOSO.TEST\nzone contoso.test\nupdate delete dsvm-1.contoso.test. A\nupdate delete dsvm-1.contoso.test. AAAA\nsend\n',
  );
  t.throws(() => deleteRecordScript('dc1\nsend', 'R', 'z', 'a'), /bad DNS name/);
});

/** A watcher against the IMDS fake, with the state directory of a test context. */
async function setup(t: TapTest, events: EventSeed[]) {
  const fakes = await startFakes({
    seed: { vm: { compute: { name: 'dsvmpool_3', vmScaleSetName: 'dsvmpool' } }, scheduledEvents: events },
  });
  t.teardown(() => fakes.close());
  const tc = await makeTestContext();
  tc.ctx.imds = new ImdsClient(fakes.urls.imds, 2000);
  const ops = new FakeOps();
  ops.removeDnsRecord = async () => {
    ops.calls.push('removeDnsRecord');
  };
  const watcher = (onStep?: (eventId: string, step: string) => void) =>
    new ScheduledEventsWatcher({
      ctx: tc.ctx,
      steps: terminateStepsOf(ops.capabilities()),
      log: tc.log,
      pollMs: 1000,
      ...(onStep ? { onStep } : {}),
    });
  const journalFile = path.join(tc.ctx.paths.stateDir, JOURNAL_FILE);
  return { fakes, tc, ops, watcher, journalFile };
}

t.test('Preempt is handled like Terminate', async (t) => {
  const notBefore = new Date(Date.now() + 30_000).toUTCString();
  const { fakes, ops, watcher, journalFile } = await setup(t, [ev('spot', 'Preempt', ['dsvmpool_3'], { NotBefore: notBefore })]);
  await watcher().pollOnce();
  t.same(ops.calls, ['closeHandlesAndUnmount', 'removeDnsRecord', 'leaveDomain']);
  t.same(
    fakes.state.approvals().map((a) => a.EventId),
    ['spot'],
  );
  const j = parseJournal(await readFile(journalFile, 'utf8'));
  t.same(j.events.spot?.steps, { share: 'done', dns: 'done', domain: 'done' });
  t.equal(j.events.spot?.eventType, 'Preempt');
  t.ok(j.events.spot?.approvedAt, 'approval journaled');
});

t.test('a new daemon resumes after the steps journaled as done, and approves once', async (t) => {
  const { fakes, tc, ops, watcher, journalFile } = await setup(t, [ev('ours', 'Terminate', ['dsvmpool_3'])]);
  await mkdir(path.dirname(journalFile), { recursive: true });
  // What a daemon killed after the unmount leaves behind.
  await writeFile(
    journalFile,
    JSON.stringify({
      version: 1,
      events: { ours: { eventType: 'Terminate', firstSeenAt: new Date().toISOString(), steps: { share: 'done' } } },
    }),
  );
  await watcher().pollOnce();
  t.same(ops.calls, ['removeDnsRecord', 'leaveDomain'], 'the unmount is not redone');
  t.match(tc.logLines.join('\n'), /resuming: share seen before a restart/);
  // Two more daemons, each polling twice: the event is still listed (Started) but journaled as approved.
  for (let i = 0; i < 2; i++) {
    const told: string[] = [];
    const w = watcher((eventId, step) => told.push(`${eventId}: ${step}`));
    await w.pollOnce();
    await w.pollOnce();
    t.match(told, [/^ours: approved at .*; waiting for the platform/], `daemon ${i + 2} is told once that it is leaving (no repairs)`);
    t.equal(told.length, 1, `daemon ${i + 2}: told once`);
  }
  t.same(ops.calls, ['removeDnsRecord', 'leaveDomain'], 'never handled again');
  t.same(
    fakes.state.approvals().map((a) => a.EventId),
    ['ours'],
    'approved exactly once',
  );
});

t.test('a failed step is retried by the next daemon; the done ones are not', async (t) => {
  const { fakes, ops, watcher, journalFile } = await setup(t, [ev('ours', 'Terminate', ['dsvmpool_3'])]);
  fakes.fail('imds.scheduledEventsApprove', { status: 500, times: 1 });
  ops.failStep = 'closeHandlesAndUnmount';
  await watcher().pollOnce();
  t.same(parseJournal(await readFile(journalFile, 'utf8')).events.ours?.steps, { share: 'failed', dns: 'done', domain: 'done' });
  ops.failStep = undefined;
  ops.calls.length = 0;
  await watcher().pollOnce();
  t.same(ops.calls, ['closeHandlesAndUnmount'], 'only the failed step again');
  const j = parseJournal(await readFile(journalFile, 'utf8'));
  t.equal(j.events.ours?.cleanupOk, true);
  t.same(
    fakes.state.approvals().map((a) => a.EventId),
    ['ours'],
  );
});

t.test('events for other VMs: no step, no approval, no journal entry', async (t) => {
  const { fakes, ops, watcher, journalFile } = await setup(t, [
    ev('theirs', 'Terminate', ['dsvmpool_4']),
    ev('spot-theirs', 'Preempt', ['dsvmpool_30']),
  ]);
  await watcher().pollOnce();
  t.same(ops.calls, []);
  t.same(fakes.state.approvals(), []);
  t.same(parseJournal(await readFile(journalFile, 'utf8').catch(() => undefined)).events, {});
});
