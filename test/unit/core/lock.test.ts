// The lock every writer of system configuration holds (src/agent/lock.ts):
// exclusion between processes over more than 100 racing acquisitions, a
// dead holder's lock taken by exactly one of several racers (100 trials),
// a release that never frees another's lock, and a place systemd does not
// empty. The racers are real processes and the exclusion is checked two
// ways: a marker file claimed with O_EXCL while holding, and the holding
// intervals on the shared monotonic clock.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { acquireLock } from '../../../src/agent/lock.js';
import { makePaths } from '../../../src/agent/paths.js';
import { overlapping, race } from './lock-race/race.js';

/** Whether someone holds `file`, asked from outside with flock(1). */
const heldByAnyone = (file: string): boolean => spawnSync('flock', ['--exclusive', '--nonblock', file, 'true']).status === 1;

t.test('exclusion: 4 processes, 30 acquisitions each, never two holders', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'dsvm-lock-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const reports = await race(path.join(dir, 'agent.lock'), dir, 4, 30);
  const acquisitions = reports.reduce((n, r) => n + r.spans.length, 0);
  t.ok(acquisitions >= 100, `${acquisitions} racing acquisitions`);
  t.equal(
    reports.reduce((n, r) => n + r.overlaps, 0),
    0,
    'no holder ever found the marker of another',
  );
  t.same(overlapping(reports), [], 'no two holding intervals overlap');
  t.notOk(heldByAnyone(path.join(dir, 'agent.lock')), 'free once every racer released');
});

t.test('a holder that dies holding the lock: exactly one racer takes it (100 trials)', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'dsvm-lock-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const lock = path.join(dir, 'agent.lock');
  let doubleHolders = 0;
  let taken = 0;
  for (let trial = 0; trial < 100; trial++) {
    // The holder: one process that holds the lock (flock(1) on its fd 9) until SIGKILL, with no clean-up.
    const holder = spawn('sh', ['-c', 'exec 9<>"$0"; flock --exclusive 9; exec sleep 60', lock], { stdio: 'ignore' });
    while (!heldByAnyone(lock)) await new Promise((r) => setTimeout(r, 2));
    let holders = 0;
    const racers = Array.from({ length: 3 }, async () => {
      const release = await acquireLock(lock, 'racer', { waitMs: 10_000 });
      if (++holders > 1) doubleHolders++;
      await new Promise((r) => setTimeout(r, 1));
      holders--;
      taken++;
      await release();
    });
    // Racers are waiting in the kernel when the holder dies.
    await new Promise((r) => setTimeout(r, 5));
    holder.kill('SIGKILL');
    await Promise.all(racers);
  }
  t.equal(doubleHolders, 0, 'never two holders after a takeover');
  t.equal(taken, 300, 'every racer got the lock in turn');
});

t.test('busy: no wait means notReady at once; a bounded wait says how long it waited', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'dsvm-lock-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const lock = path.join(dir, 'agent.lock');
  const release = await acquireLock(lock, 'provision');
  await t.rejects(acquireLock(lock, 'repair rejoin'), { kind: 'notReady', reason: 'locked', message: /repair rejoin: .*holds the lock/ });
  const waits: number[] = [];
  const t0 = Date.now();
  await t.rejects(acquireLock(lock, 'provision', { waitMs: 700, progressMs: 200, onWait: (ms) => waits.push(ms) }), {
    reason: 'locked',
    message: /waited 1 s/,
  });
  t.ok(Date.now() - t0 >= 650, `waited ${Date.now() - t0} ms`);
  // Told more than once, each time after a slice of about progressMs (a slow
  // machine makes the slices longer and the reports fewer, never more).
  t.ok(waits.length >= 2, `progress told ${waits.length} times: ${waits.join(', ')} ms`);
  for (let i = 1; i < waits.length; i++)
    t.ok(waits[i]! - waits[i - 1]! >= 150, `report ${i} came ${waits[i]! - waits[i - 1]!} ms after the one before`);
  await release();
  const again = await acquireLock(lock, 'provision', { waitMs: 1000 });
  await again();
});

t.test('a release never frees or removes a lock that is no longer ours', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'dsvm-lock-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const lock = path.join(dir, 'agent.lock');
  const first = await acquireLock(lock, 'first');
  await first();
  const second = await acquireLock(lock, 'second');
  // The first holder's clean-up runs again late (a finally after a timeout, a retry).
  await first();
  t.ok(existsSync(lock), 'the lock file is still there');
  t.ok(heldByAnyone(lock), 'the second holder still holds it');
  await t.rejects(acquireLock(lock, 'third'), { name: 'AgentError', reason: 'locked' }, 'a third process cannot take it');
  await second();
  t.notOk(heldByAnyone(lock), 'free after its own release');
});

t.test('the lock lives in the state directory, which systemd keeps across restarts', async (t) => {
  const p = makePaths('/');
  t.equal(p.lockFile, '/var/lib/dsvm-agent/agent.lock');
  t.notOk(p.lockFile.startsWith(p.runDir + '/'), 'not in RuntimeDirectory= (emptied at every stop and restart)');
  const unit = await readFile(fileURLToPath(new URL('../../../packaging/systemd/dsvm-agent.service', import.meta.url)), 'utf8');
  t.match(unit, /^StateDirectory=dsvm-agent$/m, 'the unit keeps /var/lib/dsvm-agent (StateDirectory=)');
});
