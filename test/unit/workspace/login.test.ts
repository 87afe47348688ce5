import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { RunRequest } from '../../../src/agent/runner.js';
import { ACCOUNT_REUSE_MS, exitCodeForOutcome, type LoginDeps } from '../../../src/tasks/workspace/index.js';
import { LoginService } from '../../../src/tasks/workspace/service.js';
import { InProcessChecks } from '../../../src/tasks/workspace/in-process.js';
import type { FakeCommand } from '../../helpers/fake-runner.js';
import { makeTestContext } from '../../helpers/context.js';

const NODE = 'node-for-test';
const alicePw = { file: 'getent', args: ['passwd', '--', 'alice'], result: { stdout: 'alice:x:1001:1001::/home/alice:/bin/bash\n' } };
const report = (state: string, changes: string[] = [], warnings: string[] = []) => ({
  stdout: JSON.stringify({ state, changes, warnings }),
});
const isHomeChild = (a: readonly string[]) => a[0] === '-e' && a[1]!.includes('home-missing');
const isShareChild = (a: readonly string[]) => a[0] === '-e' && a[1]!.includes('statfsSync');

interface Case {
  name: string;
  config?: Record<string, unknown>;
  commands: (target: string) => FakeCommand[];
  shareHealthy?: boolean | undefined;
  mountinfo?: string;
  want: { status: string; reason?: string; changed?: boolean; share?: string; home?: string };
  /** Programs run (as a set: the two sides run in parallel). */
  calls: string[];
  check?: (t: Test, calls: RunRequest[]) => void;
}

const cases: Case[] = [
  {
    name: 'fast path: everything in place, one stat and one readlink, no Node child, no write',
    commands: (target) => [
      alicePw,
      { file: 'stat', result: { stdout: 'directory\ndirectory\n' } },
      { file: 'readlink', result: { stdout: `${target}\n` } },
    ],
    shareHealthy: true,
    want: { status: 'done', changed: false, share: 'ok', home: 'ok' },
    calls: ['getent', 'stat', 'readlink'],
    check: (t, calls) => {
      const rl = calls.find((c) => c.file === 'readlink')!;
      t.equal(rl.uid, 1001, 'readlink runs as the user');
      t.equal(rl.gid, 1001);
    },
  },
  {
    name: 'first login: share folders by a root child, $HOME by a child running as the user',
    commands: () => [
      alicePw,
      { file: 'stat', result: { exitCode: 1 } },
      { file: 'readlink', result: { exitCode: 1 } },
      { file: NODE, args: isShareChild, result: report('created', ['created /data/workspace/alice']) },
      { file: NODE, args: isHomeChild, result: report('created', ['linked']) },
    ],
    shareHealthy: true,
    want: { status: 'done', changed: true, share: 'created', home: 'created' },
    calls: ['getent', 'stat', 'readlink', NODE],
    check: (t, calls) => {
      const share = calls.find((c) => c.file === NODE && isShareChild(c.args!))!;
      const home = calls.find((c) => c.file === NODE && isHomeChild(c.args!))!;
      t.equal(share.uid, undefined, 'share child is root');
      t.ok((share.timeoutMs ?? 0) > 0, 'share child has a SIGKILL deadline');
      t.equal(home.uid, 1001, 'home child runs as the user');
      t.equal(home.gid, 1001);
      t.equal(home.cwd, '/');
      const spec = JSON.parse(home.args![home.args!.length - 1]!);
      t.match(spec, { dirs: ['notebooks'], link: 'notebooks/remote' });
      t.match(spec.target, /\/data\/workspace\/alice\/notebooks$/);
    },
  },
  {
    name: 'system account gets nothing',
    commands: () => [{ file: 'getent', result: { stdout: 'daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n' } }],
    want: { status: 'skipped', reason: 'system-account' },
    calls: ['getent'],
  },
  {
    name: 'user in no allowed group gets nothing',
    config: { domain: { allowGroups: ['dsvm-users'] } },
    commands: () => [
      { file: 'getent', args: ['passwd', '--', 'mallory'], result: { stdout: 'mallory:x:1005:1005::/home/mallory:/bin/bash\n' } },
      { file: 'getent', args: ['group', '--', 'dsvm-users'], result: { stdout: 'dsvm-users:*:70012:alice\n' } },
      { file: 'id', args: ['-G', '--', 'mallory'], result: { stdout: '1005 513\n' } },
    ],
    want: { status: 'skipped', reason: 'not-allowed' },
    calls: ['getent', 'id'],
  },
  {
    name: 'unknown user',
    commands: () => [{ file: 'getent', result: { exitCode: 2 } }],
    want: { status: 'failed', reason: 'unknown-user' },
    calls: ['getent'],
  },
  {
    name: 'share unhealthy: share skipped, $HOME link made anyway',
    config: { share: { account: 'contosofiles', name: 'workspace', key: { file: '/etc/k' } } },
    commands: () => [
      alicePw,
      { file: 'readlink', result: { exitCode: 1 } },
      { file: NODE, args: isHomeChild, result: report('created', ['linked']) },
    ],
    shareHealthy: false,
    want: { status: 'partial', reason: 'share-unhealthy', share: 'skipped', home: 'created' },
    calls: ['getent', 'readlink', NODE],
  },
  {
    name: 'no daemon, share configured but not mounted: no folder under the bare mount point',
    config: { share: { account: 'contosofiles', name: 'workspace', key: { file: '/etc/k' } } },
    mountinfo: '22 1 8:1 / / rw - ext4 /dev/sda1 rw\n',
    commands: (target) => [alicePw, { file: 'readlink', result: { stdout: `${target}\n` } }],
    shareHealthy: undefined,
    want: { status: 'partial', reason: 'share-not-mounted', share: 'skipped', home: 'ok' },
    calls: ['getent', 'readlink'],
  },
  {
    name: 'no daemon, share mounted: share work runs',
    config: { share: { account: 'contosofiles', name: 'workspace', key: { file: '/etc/k' } } },
    mountinfo: '22 1 8:1 / / rw - ext4 /dev/sda1 rw\n40 22 0:50 / /data/workspace rw - cifs //h/workspace rw\n',
    commands: (target) => [
      alicePw,
      { file: 'stat', result: { stdout: 'directory\ndirectory\n' } },
      { file: 'readlink', result: { stdout: `${target}\n` } },
    ],
    shareHealthy: undefined,
    want: { status: 'done', share: 'ok', home: 'ok' },
    calls: ['getent', 'stat', 'readlink'],
  },
  {
    name: 'share folder planted by someone else: refused, and no link into it',
    commands: () => [
      alicePw,
      { file: 'stat', result: { stdout: 'symbolic link\n' } },
      { file: 'readlink', result: { exitCode: 1 } },
      {
        file: NODE,
        args: isShareChild,
        result: report('refused', [], ['/data/workspace/alice is a symbolic link to "/data/workspace/bob": not followed']),
      },
    ],
    shareHealthy: true,
    want: { status: 'refused', share: 'refused', home: 'skipped' },
    calls: ['getent', 'stat', 'readlink', NODE],
    check: (t, calls) =>
      t.notOk(
        calls.some((c) => c.file === NODE && isHomeChild(c.args!)),
        'no home child',
      ),
  },
  {
    name: 'something in the way in $HOME: refused, warning kept',
    commands: () => [
      alicePw,
      { file: 'stat', result: { stdout: 'directory\ndirectory\n' } },
      { file: 'readlink', result: { exitCode: 1 } },
      { file: NODE, args: isHomeChild, result: report('blocked', [], ['/home/alice/notebooks/remote is a FIFO: left alone']) },
    ],
    shareHealthy: true,
    want: { status: 'refused', share: 'ok', home: 'refused' },
    calls: ['getent', 'stat', 'readlink', NODE],
  },
  {
    name: 'all-digit name never reaches NSS (it would be read as a uid)',
    commands: () => [],
    want: { status: 'failed', reason: 'bad-name' },
    calls: [],
  },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const tc = await makeTestContext({ config: c.config ?? {} });
    const target = tc.paths.under('/data/workspace/alice/notebooks');
    for (const cmd of c.commands(target)) tc.runner.on(cmd);
    if (c.mountinfo !== undefined) {
      await import('node:fs/promises').then((fs) => fs.mkdir(tc.paths.under('/proc/self'), { recursive: true }));
      await writeFile(tc.paths.procMounts, c.mountinfo);
    }
    const deps: LoginDeps = { cfg: tc.ctx.cfg, paths: tc.paths, run: tc.runner.run, log: tc.log, nodeBinary: NODE };
    const logins = new LoginService(deps);
    const user = c.name.startsWith('all-digit')
      ? '1001'
      : c.name.includes('mallory') || c.name.includes('no allowed')
        ? 'mallory'
        : c.name.startsWith('system')
          ? 'daemon'
          : 'alice';
    const out = await logins.run(user, { timeLimitMs: 3000, shareHealthy: c.shareHealthy });
    t.match(out, {
      status: c.want.status,
      ...(c.want.reason ? { reason: c.want.reason } : {}),
      ...(c.want.changed === undefined ? {} : { changed: c.want.changed }),
    });
    if (c.want.share) t.equal(out.share?.state, c.want.share, 'share step');
    if (c.want.home) t.equal(out.home?.state, c.want.home, 'home step');
    t.same([...new Set(tc.runner.calls.map((r) => r.file))].sort(), [...c.calls].sort(), 'commands run');
    t.same(tc.runner.unexpected, [], 'no unexpected command');
    c.check?.(t, tc.runner.calls);
  });
}

t.test('handleLogin answers "pending" at the deadline and finishes in the background', async (t) => {
  const tc = await makeTestContext();
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => (release = r));
  tc.runner.on({ file: 'getent', result: async () => (await gate, alicePw.result) });
  tc.runner.on({ file: 'stat', result: { stdout: 'directory\ndirectory\n' } });
  tc.runner.on({ file: 'readlink', result: { stdout: `${tc.paths.under('/data/workspace/alice/notebooks')}\n` } });
  const deps: LoginDeps = { cfg: tc.ctx.cfg, paths: tc.paths, run: tc.runner.run, log: tc.log, nodeBinary: NODE };
  const logins = new LoginService(deps);
  const t0 = Date.now();
  // Ten concurrent logins of the same user: one run, one result.
  const answers = await Promise.all(Array.from({ length: 10 }, () => logins.handle('alice', { deadlineMs: 150, shareHealthy: true })));
  const took = Date.now() - t0;
  t.ok(took < 600, `answered within the bound (${took} ms)`);
  t.ok(
    answers.every((a) => a.status === 'pending'),
    'all pending',
  );
  t.equal(tc.runner.calls.filter((c) => c.file === 'getent').length, 1, 'one NSS lookup for ten logins');
  release();
  await new Promise((r) => setTimeout(r, 50));
  t.ok(
    tc.logLines.some((l) => /finished in the background/.test(l)),
    'the result is logged',
  );
  const later = await logins.handle('alice', { deadlineMs: 2000, shareHealthy: true });
  t.equal(later.status, 'done');
});

t.test('exit codes of login', async (t) => {
  const cases: [string, number][] = [
    ['done', 0],
    ['skipped', 0],
    ['partial', 3],
    ['pending', 3],
    ['refused', 1],
    ['failed', 1],
  ];
  for (const [status, code] of cases) t.equal(exitCodeForOutcome({ status: status as never }), code, status);
});

t.test('repeated login through children: the last plan is checked alongside NSS, and dropped when NSS disagrees', async (t) => {
  const tc = await makeTestContext();
  const target = tc.paths.under('/data/workspace/alice/notebooks');
  let uid = 1001;
  let now = 1_000_000;
  tc.runner.on({ file: 'getent', result: () => ({ stdout: `alice:x:${uid}:1001::/home/alice:/bin/bash\n` }) });
  tc.runner.on({ file: 'stat', result: { stdout: 'directory\ndirectory\n' } });
  tc.runner.on({ file: 'readlink', result: { stdout: `${target}\n` } });
  // A mountinfo where everything is a network filesystem: no in-process checks.
  const remote = path.join(tc.root, 'mountinfo-remote');
  await writeFile(remote, '1 0 0:1 / / rw - cifs //srv/share rw\n');
  const deps: LoginDeps = {
    cfg: tc.ctx.cfg,
    paths: tc.paths,
    run: tc.runner.run,
    log: tc.log,
    nodeBinary: NODE,
    now: () => now,
    inProcess: new InProcessChecks(remote),
  };
  const logins = new LoginService(deps);
  t.equal((await logins.run('alice', { timeLimitMs: 3000, shareHealthy: false })).status, 'done');
  const since = (n: number) =>
    tc.runner.calls
      .slice(n)
      .map((c) => c.file)
      .sort();
  let before = tc.runner.calls.length;
  const soon = await logins.run('alice', { timeLimitMs: 3000, shareHealthy: false });
  t.match(soon, { status: 'done', message: /already in place/ });
  t.same(
    since(before),
    ['readlink', 'stat'],
    'within the reuse window: no NSS lookup; on a network filesystem not known to answer, the checks run in children',
  );
  now += ACCOUNT_REUSE_MS;
  before = tc.runner.calls.length;
  t.match(await logins.run('alice', { timeLimitMs: 3000, shareHealthy: false }), { message: /already in place/ });
  t.same(since(before), ['getent', 'readlink', 'stat'], 'after the window: NSS again, alongside the check');
  // The share answers (the daemon's probe says so): its folders are checked in-process even on a network filesystem.
  before = tc.runner.calls.length;
  const missing = await logins.run('alice', { timeLimitMs: 3000, shareHealthy: true });
  t.equal(missing.status, 'done');
  t.notMatch(missing.message, /already in place/, 'the folders do not exist on disk: full path');
  await mkdir(target, { recursive: true });
  before = tc.runner.calls.length;
  t.match(await logins.run('alice', { timeLimitMs: 3000, shareHealthy: true }), { status: 'done', message: /already in place/ });
  t.same(since(before), ['readlink'], 'share folders found in-process');
  uid = 1002; // the account changed (re-created, new uid): full path, checks as the new uid
  now += ACCOUNT_REUSE_MS;
  const changed = await logins.run('alice', { timeLimitMs: 3000, shareHealthy: true });
  t.equal(changed.status, 'done');
  t.notMatch(changed.message, /already in place/);
  t.equal(tc.runner.calls.filter((c) => c.file === 'readlink').pop()?.uid, 1002);
  t.same(tc.runner.unexpected, []);
});

t.test('repeated login on local disks: no process at all, and the real files decide', async (t) => {
  const tc = await makeTestContext();
  const me = process.getuid!();
  // Not root: the fast path's uid check needs the test's own uid, and NSS is faked.
  const gid = process.getgid!();
  const home = tc.paths.under('/home/alice');
  const notebooks = tc.paths.under('/data/workspace/alice/notebooks');
  tc.runner.on({ file: 'getent', result: () => ({ stdout: `alice:x:${me}:${gid}::/home/alice:/bin/bash\n` }) });
  // First login: children report what they made; here the test makes it for real.
  tc.runner.on({ file: 'stat', result: { exitCode: 1 } });
  tc.runner.on({ file: 'readlink', result: { exitCode: 1 } });
  tc.runner.on({
    file: NODE,
    result: async (req) => {
      if (isShareChild(req.args!)) {
        await mkdir(notebooks, { recursive: true });
        return report('created', ['created']);
      }
      await mkdir(path.join(home, 'notebooks'), { recursive: true });
      await rm(path.join(home, 'notebooks/remote'), { force: true });
      await symlink(notebooks, path.join(home, 'notebooks/remote'));
      return report('created', ['linked']);
    },
  });
  // The test's own uid may be root's: let any uid have a workspace here.
  const cfg = { ...tc.ctx.cfg, workspace: { ...tc.ctx.cfg.workspace, minUid: 0 } };
  const deps: LoginDeps = { cfg, paths: tc.paths, run: tc.runner.run, log: tc.log, nodeBinary: NODE };
  const logins = new LoginService(deps);
  const first = await logins.run('alice', { timeLimitMs: 3000, shareHealthy: true });
  t.equal(first.status, 'done', JSON.stringify(first));
  const before = tc.runner.calls.length;
  const again = await logins.run('alice', { timeLimitMs: 3000, shareHealthy: true });
  t.match(again, { status: 'done', message: /already in place/ });
  t.equal(tc.runner.calls.length, before, 'no child process');
  // The link replaced by one pointing elsewhere: not in place, the full path runs.
  await rm(path.join(home, 'notebooks/remote'));
  await symlink('/tmp', path.join(home, 'notebooks/remote'));
  const moved = await logins.run('alice', { timeLimitMs: 3000, shareHealthy: true });
  t.notMatch(moved.message, /already in place/, 'a link to somewhere else is not in place');
  t.ok(
    tc.runner.calls.slice(before).some((c) => c.file === 'getent'),
    'the full path looks the account up again',
  );
  t.same(tc.runner.unexpected, []);
});

t.test('first logins of many users at once: at most 4 Node children run at a time', async (t) => {
  const tc = await makeTestContext();
  let running = 0;
  let peak = 0;
  const slowChild = async (req: RunRequest) => {
    running++;
    peak = Math.max(peak, running);
    await new Promise((r) => setTimeout(r, 20));
    running--;
    return report(req.args![1]!.includes('statfsSync') ? 'created' : 'created', ['x']);
  };
  const uid = (name: string) => 2000 + Number(name.replace('user', ''));
  tc.runner.on({
    file: 'getent',
    result: (req) => ({ stdout: `${req.args![2]}:x:${uid(req.args![2]!)}:2000::/home/${req.args![2]}:/bin/sh\n` }),
  });
  tc.runner.on({ file: 'stat', result: { exitCode: 1 } });
  tc.runner.on({ file: 'readlink', result: { exitCode: 1 } });
  tc.runner.on({ file: NODE, result: slowChild });
  const deps: LoginDeps = { cfg: tc.ctx.cfg, paths: tc.paths, run: tc.runner.run, log: tc.log, nodeBinary: NODE };
  const logins = new LoginService(deps);
  const outs = await Promise.all(Array.from({ length: 12 }, (_, i) => logins.handle(`user${i}`, { deadlineMs: 5000, shareHealthy: true })));
  t.ok(
    outs.every((o) => o.status === 'done'),
    'all done',
  );
  t.equal(tc.runner.calls.filter((c) => c.file === NODE).length, 24, 'two children per first login');
  t.ok(peak <= 4, `peak ${peak} concurrent Node children`);
});

t.test('one user cannot fill the login slots with spellings of their name while their share stalls', async (t) => {
  const tc = await makeTestContext();
  // NSS folds case (as sssd does for AD): every spelling is mallory, uid 1005.
  const accounts: Record<string, string> = {
    mallory: 'mallory:x:1005:1005::/home/mallory:/bin/bash',
    alice: 'alice:x:1001:1001::/home/alice:/bin/bash',
  };
  tc.runner.on({
    file: 'getent',
    args: (a) => a[0] === 'passwd',
    result: (req) => ({ stdout: accounts[req.args![2]!.toLowerCase()]! + '\n' }),
  });
  tc.runner.on({ file: 'stat', result: { exitCode: 1 } });
  tc.runner.on({ file: 'readlink', result: { exitCode: 1 } });
  // mallory's share child stalls until its deadline (a hung mount of their own); everyone else's is quick.
  let stalled = 0;
  let releaseStalled: () => void = () => undefined;
  const stall = new Promise<void>((r) => (releaseStalled = r));
  tc.runner.on({
    file: NODE,
    result: async (req) => {
      if (req.args!.some((a) => a.includes('/mallory'))) {
        stalled++;
        await stall;
        return { exitCode: null, signal: 'SIGKILL', timedOut: true };
      }
      return report('created', ['x']);
    },
  });
  t.teardown(() => releaseStalled());
  const deps: LoginDeps = { cfg: tc.ctx.cfg, paths: tc.paths, run: tc.runner.run, log: tc.log, nodeBinary: NODE };
  const logins = new LoginService(deps);
  const spellings = ['mallory', 'MALLORY', 'Mallory', 'mAllory', 'maLlory', 'malLory', 'mallORY', 'MALLory'];
  const mallory = spellings.map((u) => logins.handle(u, { deadlineMs: 100, shareHealthy: true }));
  await new Promise((r) => setTimeout(r, 50));
  t.equal(stalled, 1, `one stalled child for ${spellings.length} spellings of one uid`);
  const t0 = Date.now();
  const alice = await logins.handle('alice', { deadlineMs: 2000, shareHealthy: true });
  t.equal(alice.status, 'done', `alice's first login is not starved (${alice.message})`);
  t.ok(Date.now() - t0 < 1500, `within the bound (${Date.now() - t0} ms)`);
  t.ok(
    (await Promise.all(mallory)).every((o) => o.status === 'pending'),
    "mallory's own logins wait (pending), nobody else's",
  );
  releaseStalled();
  await new Promise((r) => setTimeout(r, 50));
  t.equal(stalled, 1, 'still one run for the uid after the stall');
});
