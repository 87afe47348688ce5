import t from 'tap';
import { ImdsClient } from '../../../src/agent/azure/imds.js';
import {
  cleanupBudgetMs,
  ownResourceNames,
  ScheduledEventsWatcher,
  terminateEventsFor,
  type ScheduledEventsDoc,
} from '../../../src/tasks/scheduled-events/index.js';
import { startFakes, type Seed } from '../../fakes/index.js';
import { makeTestContext } from '../../helpers/context.js';
import { terminateStepsOf } from '../../../src/agent/capability.js';
import { FakeOps } from './doubles.js';

type EventSeed = NonNullable<Seed['scheduledEvents']>[number];
const ev = (id: string, type: EventSeed['EventType'], resources: string[], extra: Partial<EventSeed> = {}): EventSeed => ({
  EventId: id,
  EventType: type,
  Resources: resources,
  ...extra,
});

t.test('which events are ours (pure)', async (t) => {
  const names = ownResourceNames({ name: 'dsvmpool_3', vmScaleSetName: 'dsvmpool' });
  const doc = (events: EventSeed[]): ScheduledEventsDoc => ({
    DocumentIncarnation: 1,
    Events: events.map((e) => ({ EventStatus: 'Scheduled', ...e })) as ScheduledEventsDoc['Events'],
  });
  const cases = [
    { name: 'terminate for us', events: [ev('A', 'Terminate', ['dsvmpool_3'])], want: ['A'] },
    { name: 'case-insensitive name', events: [ev('A', 'Terminate', ['DSVMPOOL_3'])], want: ['A'] },
    { name: 'terminate for another instance', events: [ev('B', 'Terminate', ['dsvmpool_4'])], want: [] },
    { name: 'one event naming us and others', events: [ev('C', 'Terminate', ['dsvmpool_4', 'dsvmpool_3'])], want: ['C'] },
    { name: 'a reboot for us is not a terminate', events: [ev('D', 'Reboot', ['dsvmpool_3'])], want: [] },
    { name: 'prefix is not a match', events: [ev('E', 'Terminate', ['dsvmpool_31'])], want: [] },
  ];
  for (const c of cases)
    t.same(
      terminateEventsFor(doc(c.events), names).map((e) => e.EventId),
      c.want,
      c.name,
    );
  const now = Date.parse('2026-01-01T00:00:00Z');
  t.equal(
    cleanupBudgetMs(
      { EventId: 'x', EventType: 'Terminate', Resources: [], EventStatus: 'Scheduled', NotBefore: 'Thu, 01 Jan 2026 00:05:00 GMT' },
      now,
    ),
    290_000,
    'NotBefore minus a margin',
  );
  t.equal(
    cleanupBudgetMs({ EventId: 'x', EventType: 'Terminate', Resources: [], EventStatus: 'Started', NotBefore: '' }, now),
    60_000,
    'already started: a default bound',
  );
});

t.test('Terminate flow against the IMDS fake', async (t) => {
  const fakes = await startFakes({ seed: { vm: { compute: { name: 'dsvmpool_3', vmScaleSetName: 'dsvmpool' } } } });
  t.teardown(() => fakes.close());
  const notBefore = new Date(Date.now() + 5 * 60_000).toUTCString();
  const cases: Array<{ name: string; events: EventSeed[]; failStep?: string; wantCalls: string[]; wantApproved: string[] }> = [
    { name: 'nothing scheduled', events: [], wantCalls: [], wantApproved: [] },
    {
      name: 'another VM is terminated',
      events: [ev('other', 'Terminate', ['dsvmpool_4'], { NotBefore: notBefore })],
      wantCalls: [],
      wantApproved: [],
    },
    {
      name: 'we are terminated',
      events: [ev('ours', 'Terminate', ['dsvmpool_3'], { NotBefore: notBefore })],
      wantCalls: ['closeHandlesAndUnmount', 'leaveDomain'],
      wantApproved: ['ours'],
    },
    {
      name: 'ours and another in one document',
      events: [
        ev('other', 'Terminate', ['dsvmpool_4']),
        ev('freeze', 'Freeze', ['dsvmpool_3']),
        ev('ours', 'Terminate', ['dsvmpool_3'], { NotBefore: notBefore }),
      ],
      wantCalls: ['closeHandlesAndUnmount', 'leaveDomain'],
      wantApproved: ['ours'],
    },
    {
      name: 'a failed unmount still leaves the domain and approves',
      events: [ev('ours', 'Terminate', ['dsvmpool_3'], { NotBefore: notBefore })],
      failStep: 'closeHandlesAndUnmount',
      wantCalls: ['closeHandlesAndUnmount', 'leaveDomain'],
      wantApproved: ['ours'],
    },
  ];
  for (const c of cases) {
    fakes.reset();
    fakes.state.seed({ scheduledEvents: c.events });
    const tc = await makeTestContext({ config: { azure: { imdsEndpoint: fakes.urls.imds } } });
    tc.ctx.imds = new ImdsClient(fakes.urls.imds, 2000);
    const ops = new FakeOps();
    if (c.failStep) ops.failStep = c.failStep;
    const steps: string[] = [];
    const w = new ScheduledEventsWatcher({
      ctx: tc.ctx,
      steps: terminateStepsOf(ops.capabilities()),
      log: tc.log,
      pollMs: 1000,
      onStep: (_id, step) => steps.push(step),
    });
    await w.pollOnce();
    await w.pollOnce();
    t.same(ops.calls, c.wantCalls, `${c.name}: cleanup ran once, in order`);
    t.same(
      fakes.state.approvals().map((a) => a.EventId),
      c.wantApproved,
      `${c.name}: approvals (idempotent per EventId)`,
    );
    if (c.wantApproved.length)
      t.same(
        steps,
        ['closing share handles and unmounting', 'removing the DNS record', 'leaving the domain', 'approving'],
        `${c.name}: steps reported`,
      );
    const gets = fakes.requests.imds.filter((r) => r.route === 'imds.scheduledEvents');
    t.ok(
      gets.every((r) => r.headers.metadata === 'true' && r.query['api-version'] === '2020-07-01'),
      `${c.name}: Metadata header and api-version`,
    );
    if (c.failStep) t.match(tc.logLines.join('\n'), /target is busy/, `${c.name}: the failure is logged`);
  }
});

t.test('an approval that fails is retried at the next poll', async (t) => {
  const fakes = await startFakes({
    seed: { vm: { compute: { name: 'dsvmpool_3' } }, scheduledEvents: [ev('ours', 'Terminate', ['dsvmpool_3'])] },
  });
  t.teardown(() => fakes.close());
  fakes.fail('imds.scheduledEventsApprove', { status: 500, times: 1 });
  const tc = await makeTestContext();
  tc.ctx.imds = new ImdsClient(fakes.urls.imds, 2000);
  const ops = new FakeOps();
  const w = new ScheduledEventsWatcher({ ctx: tc.ctx, steps: terminateStepsOf(ops.capabilities()), log: tc.log, pollMs: 1000 });
  await w.pollOnce();
  t.same(fakes.state.approvals(), [], 'first approval failed');
  await w.pollOnce();
  t.same(
    fakes.state.approvals().map((a) => a.EventId),
    ['ours'],
    'approved on the next poll',
  );
  t.same(
    ops.calls,
    ['closeHandlesAndUnmount', 'leaveDomain'],
    'the steps journaled as done are not run again; only the approval is retried',
  );
});

t.test('IMDS down: the watcher logs once and keeps polling', async (t) => {
  const tc = await makeTestContext();
  const w = new ScheduledEventsWatcher({ ctx: tc.ctx, steps: terminateStepsOf(new FakeOps().capabilities()), log: tc.log, pollMs: 1000 });
  await w.pollOnce();
  await w.pollOnce();
  t.equal(tc.logLines.filter((l) => l.includes('scheduled events:')).length, 1);
});
