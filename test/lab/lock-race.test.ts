/**
 * The config-writer lock as root, where it lives on a VM:
 * /var/lib/dsvm-agent/agent.lock (a throwaway /var overlay in a private mount
 * namespace). The unit tier's race (test/unit/core/lock-race) runs here too,
 * so `make lab-test` shows it: 4 racer processes, 30 acquisitions each, never
 * two holders. Then what the old pid file in /run/dsvm-agent got wrong:
 * systemd empties RuntimeDirectory= at every stop and restart (here: the
 * whole /run is emptied) while a holder works, and the lock still excludes;
 * a holder killed with SIGKILL leaves no stale lock behind.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { makePaths } from '../../src/agent/paths.js';
import { overlapping, race } from '../unit/core/lock-race/race.js';

const LOCK = makePaths('/').lockFile;

const SETUP = String.raw`
set -euo pipefail
mount --make-rprivate /
base=$1
mkdir -p "$base/var-u" "$base/var-w"
mount -t overlay overlay -o "lowerdir=/var,upperdir=$base/var-u,workdir=$base/var-w" /var
mount -t tmpfs -o mode=0755 tmpfs /run
echo ready >"$base/ready"
exec sleep infinity
`;

let holder: ChildProcess;
let base: string;
const enter = (): string[] => ['nsenter', '-t', String(holder.pid), '-m', '--'];
const inNs = (argv: string[]) => spawnSync(enter()[0]!, [...enter().slice(1), ...argv], { encoding: 'utf8' });
/** Whether anyone holds the lock, asked from inside the namespace with flock(1). */
const held = (): boolean => inNs(['flock', '--exclusive', '--nonblock', LOCK, 'true']).status === 1;

t.before(async () => {
  if (process.getuid?.() !== 0) throw new Error('the lock lab test needs root');
  base = await mkdtemp(path.join(tmpdir(), 'dsvm-lock-lab-'));
  holder = spawn('unshare', ['-m', '--propagation', 'private', 'bash', '--norc', '-c', SETUP, 'setup', base], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  for (let i = 0; i < 100; i++) {
    if (await readFile(path.join(base, 'ready'), 'utf8').catch(() => '')) break;
    await new Promise((r) => setTimeout(r, 100));
  }
});

t.teardown(async () => {
  holder?.kill('SIGKILL');
  await new Promise((r) => holder?.once('exit', r));
  await rm(base, { recursive: true, force: true });
});

t.test('4 root processes race for /var/lib/dsvm-agent/agent.lock, 30 times each: never two holders', async (t) => {
  const reports = await race(LOCK, base, 4, 30, enter());
  const acquisitions = reports.reduce((n, r) => n + r.spans.length, 0);
  t.ok(acquisitions >= 100, `${acquisitions} racing acquisitions`);
  t.equal(
    reports.reduce((n, r) => n + r.overlaps, 0),
    0,
    'no holder ever found the marker of another',
  );
  t.same(overlapping(reports), [], 'no two holding intervals overlap');
  t.equal(inNs(['stat', '-c', '%a %U', path.dirname(LOCK)]).stdout, '700 root\n', 'the lock sits in a root-only directory');
});

t.test('a holder in the middle of its work: /run emptied under it, then killed', async (t) => {
  // A holder that works for a minute: one process, its lock on fd 9.
  const work = spawn(
    enter()[0]!,
    [...enter().slice(1), 'sh', '-c', 'mkdir -p -m 0700 "${0%/*}"; exec 9<>"$0"; flock --exclusive 9; exec sleep 60', LOCK],
    {
      stdio: 'ignore',
    },
  );
  for (let i = 0; i < 200 && !held(); i++) await new Promise((r) => setTimeout(r, 10));
  t.ok(held(), 'the holder holds it');
  // What systemd does to RuntimeDirectory= at a stop or restart of the unit.
  inNs(['sh', '-c', 'rm -rf /run/* /run/.[!.]*']);
  t.ok(held(), 'emptying /run does not free the lock');
  t.equal(inNs(['flock', '--exclusive', '--wait', '1', LOCK, 'true']).status, 1, 'a second process still waits and gives up');
  const exited = work.exitCode !== null || work.signalCode !== null ? Promise.resolve() : new Promise((r) => work.once('exit', r));
  work.kill('SIGKILL');
  await exited;
  t.equal(inNs(['flock', '--exclusive', '--wait', '5', LOCK, 'true']).status, 0, 'SIGKILL: the lock is free at once, nothing stale left');
});
