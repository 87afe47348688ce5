import t from 'tap';
import { notifierFromEnv, SystemdNotifyCommand, Watchdog, watchdogIntervalMs } from '../../../src/app/daemon/notify.js';
import { makeTestContext } from '../../helpers/context.js';
import { RecordingNotifier } from './doubles.js';

t.test('watchdog interval from the environment', async (t) => {
  const cases: Array<{ name: string; env: Record<string, string>; want: number | undefined }> = [
    { name: 'no watchdog', env: {}, want: undefined },
    { name: '30 s watchdog pings every 15 s', env: { WATCHDOG_USEC: '30000000' }, want: 15_000 },
    { name: 'for this pid', env: { WATCHDOG_USEC: '10000000', WATCHDOG_PID: '4242' }, want: 5000 },
    { name: 'for another pid', env: { WATCHDOG_USEC: '10000000', WATCHDOG_PID: '1' }, want: undefined },
    { name: 'garbage', env: { WATCHDOG_USEC: 'x' }, want: undefined },
    { name: 'tiny is floored', env: { WATCHDOG_USEC: '100' }, want: 500 },
  ];
  for (const c of cases) t.equal(watchdogIntervalMs(c.env, 4242), c.want, c.name);
});

t.test('systemd-notify is run through the runner with --pid and the socket in its env only', async (t) => {
  const tc = await makeTestContext({ commands: [{ file: 'systemd-notify' }] });
  const n = notifierFromEnv({ NOTIFY_SOCKET: '/run/systemd/notify' }, { run: tc.ctx.run, log: tc.log, pid: 4242 });
  t.ok(n instanceof SystemdNotifyCommand && n.enabled);
  await Promise.all([
    n.notify({ READY: '1', STATUS: 'first boot: preflight' }),
    n.notify({ WATCHDOG: '1' }),
    n.notify({ STATUS: 'two\nlines' }),
    n.notify({ STOPPING: '1' }),
  ]);
  t.same(tc.runner.argv(), [
    'systemd-notify --pid=4242 READY=1 STATUS=first boot: preflight',
    'systemd-notify --pid=4242 WATCHDOG=1',
    'systemd-notify --pid=4242 STATUS=two lines',
    'systemd-notify --pid=4242 STOPPING=1',
  ]);
  t.same(
    tc.runner.calls.map((c) => c.env),
    Array(4).fill({ NOTIFY_SOCKET: '/run/systemd/notify' }),
  );
  t.equal(notifierFromEnv({}, { run: tc.ctx.run, log: tc.log, pid: 1 }).enabled, false, 'no NOTIFY_SOCKET, no notifier');
});

t.test('a failing systemd-notify warns once and never throws', async (t) => {
  const tc = await makeTestContext({
    commands: [{ file: 'systemd-notify', result: { exitCode: 1, stderr: 'No such file or directory' } }],
  });
  const n = new SystemdNotifyCommand({ run: tc.ctx.run, log: tc.log, socket: '/nowhere', pid: 1 });
  await n.notify({ READY: '1' });
  await n.notify({ WATCHDOG: '1' });
  t.equal(tc.logLines.filter((l) => l.includes('systemd-notify failed')).length, 1);
});

t.test('watchdog pings only while the event loop keeps up', async (t) => {
  const cases = [
    { name: 'healthy loop', lags: [5, 10, 3], wantSent: 3, wantSkipped: 0 },
    { name: 'a stall skips that ping', lags: [5, 2000, 5], wantSent: 2, wantSkipped: 1 },
    { name: 'crawling loop sends nothing', lags: [900, 1200], wantSent: 0, wantSkipped: 2 },
  ];
  const tc = await makeTestContext();
  for (const c of cases) {
    const rec = new RecordingNotifier();
    const lags = [...c.lags];
    const wd = new Watchdog({ notifier: rec, intervalMs: 1000, maxLagMs: 500, log: tc.log, lag: () => lags.shift() ?? 0 });
    for (let i = 0; i < c.lags.length; i++) await wd.tick();
    t.equal(rec.messages.length, c.wantSent, `${c.name}: pings`);
    t.equal(wd.skipped, c.wantSkipped, `${c.name}: skipped`);
    t.ok(
      rec.messages.every((m) => m.WATCHDOG === '1'),
      `${c.name}: WATCHDOG=1 only`,
    );
  }
});

t.test('a blocked event loop stops the timer-driven pings', async (t) => {
  const tc = await makeTestContext();
  const rec = new RecordingNotifier();
  const wd = new Watchdog({ notifier: rec, intervalMs: 50, maxLagMs: 100, log: tc.log });
  wd.start();
  // Waits for a condition rather than a fixed time: a loaded machine runs the timers late, not never.
  const until = async (what: () => boolean, ms = 10_000): Promise<boolean> => {
    const end = Date.now() + ms;
    while (!what() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    return what();
  };
  await until(() => rec.messages.length >= 2);
  const before = rec.messages.length;
  const stallEnd = Date.now() + 400;
  while (Date.now() < stallEnd) {
    /* block the loop */
  }
  // The first tick after the stall, whenever the loaded machine runs it (a
  // fixed wait could let a second, healthy tick in first).
  const ticksAtStall = wd.sent + wd.skipped;
  const skippedAtStall = wd.skipped;
  while (wd.sent + wd.skipped === ticksAtStall) await new Promise((r) => setImmediate(r));
  const afterStall = rec.messages.length;
  t.equal(wd.skipped, skippedAtStall + 1, 'that first tick is a skip');
  await until(() => rec.messages.length > afterStall);
  wd.stop();
  t.ok(before >= 2, `pinged while healthy (${before})`);
  t.equal(afterStall - before, 0, 'the first tick after a 400 ms stall does not ping');
  t.ok(wd.skipped >= 1, 'and counts the skip');
  t.ok(rec.messages.length > afterStall, 'pings resume once the loop keeps up');
});
