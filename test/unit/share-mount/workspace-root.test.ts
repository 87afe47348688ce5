/**
 * workspace.root below the mount point is a folder of the share: the share
 * task makes it through Files REST (key mode), so logins find it.
 */
import { existsSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import type { Fakes } from '../../fakes/index.js';
import { runTasks } from '../../../src/agent/task.js';
import { workspaceRootInShare } from '../../../src/tasks/share-mount/workspace-root.js';
import { setupTask, startShareFakes, type TaskSetup } from './helpers.js';

let fakes: Fakes;
let shareDir: string;
t.before(async () => {
  ({ fakes, shareDir } = await startShareFakes());
});
t.teardown(() => fakes.close());

const once = { initialMs: 1, factor: 1, maxDelayMs: 1, maxAttempts: 1, maxElapsedMs: 1000 };

t.test('workspace.root relative to the mount point, only when strictly below it', async (t) => {
  const cases = [
    { root: '/data/workspace/users', want: 'users' },
    { root: '/data/workspace/teams/ds/', want: 'teams/ds' },
    { root: '/data/workspace', want: undefined },
    { root: '/data/workspace/', want: undefined },
    { root: '/data/workspace2/users', want: undefined },
    { root: '/data', want: undefined },
    { root: '/srv/workspaces', want: undefined },
  ];
  for (const c of cases) t.equal(workspaceRootInShare('/data/workspace', c.root), c.want, c.root);
});

/** A task whose `stat` through the mount sees the fake share's folder (what a mounted share would show). */
async function setup(root: string, share: Record<string, unknown> = {}): Promise<TaskSetup> {
  const s = await setupTask(fakes, { share, config: { workspace: { root } } });
  const mounted = path.join(s.root, 'data/workspace');
  s.runner.on({
    file: 'stat',
    args: (a) => a[0] === '-c' && a[1] === '%F',
    result: (req) => {
      const onShare = path.join(shareDir, path.relative(mounted, req.args?.at(-1) ?? ''));
      if (!existsSync(onShare)) return { exitCode: 1, stderr: `stat: cannot statx '${req.args?.at(-1)}': No such file or directory\n` };
      return { stdout: statSync(onShare).isDirectory() ? 'directory\n' : 'regular file\n' };
    },
  });
  return s;
}

const created = (rel: string) =>
  fakes.requests.files.filter((r) => r.route === 'files.createDirectory' && r.status === 201 && r.path.endsWith(`/workspace/${rel}`));

t.test('first mount: the root is made through Files REST, signed with the key', async (t) => {
  const s = await setup('/data/workspace/users');
  const found = await s.task.check(s.ctx);
  t.equal(found.changes.at(-1), 'make folder users in the share for workspace.root /data/workspace/users (if missing)');
  const [outcome] = await runTasks([s.task], s.ctx, { backoff: once });
  t.match(outcome, { status: 'ok', changed: true }, 'converged: the check after apply sees the folder on the mount');
  t.ok(statSync(path.join(shareDir, 'users')).isDirectory());
  t.equal(created('users').length, 1);
  t.equal(created('users')[0]?.auth, 'SharedKey');
});

t.test('already mounted, then workspace.root moved below the mount point: made (parents first), once', async (t) => {
  const s = await setup('/data/workspace');
  await s.task.apply(s.ctx, await s.task.check(s.ctx));
  const ctx = { ...s.ctx, cfg: { ...s.ctx.cfg, workspace: { ...s.ctx.cfg.workspace, root: '/data/workspace/teams/ds/users' } } };
  const found = await s.task.check(ctx);
  t.same(found.changes, ['make folder teams/ds/users in the share for workspace.root /data/workspace/teams/ds/users']);
  await s.task.apply(ctx, found);
  t.ok(statSync(path.join(shareDir, 'teams/ds/users')).isDirectory());
  t.same(
    ['teams', 'teams/ds', 'teams/ds/users'].map((rel) => created(rel).length),
    [1, 1, 1],
  );
  t.same((await s.task.check(ctx)).changes, [], 'idempotent: the folder is there');
});

t.test('the root already on the share: nothing created', async (t) => {
  await mkdir(path.join(shareDir, 'present'), { recursive: true });
  const s = await setup('/data/workspace/present');
  const before = fakes.requests.files.filter((r) => r.route === 'files.createDirectory').length;
  await runTasks([s.task], s.ctx, { backoff: once });
  t.equal(fakes.requests.files.filter((r) => r.route === 'files.createDirectory' && r.status === 201).length, before, 'no folder made');
  t.same((await s.task.check(s.ctx)).changes, []);
});

t.test('nothing to make', async (t) => {
  const cases = [
    { name: 'root is the mount point', root: '/data/workspace', share: {} },
    { name: 'root outside the share', root: '/srv/workspaces', share: {} },
    { name: 'Kerberos: no key to sign with', root: '/data/workspace/users', share: { auth: 'kerberos', key: undefined } },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const s = await setup(c.root, c.share);
      s.ctx.state.facts.computerName = 'DSVM-01';
      s.mounts.state = 'findmnt-cifs.json';
      const found = await s.task.check(s.ctx);
      t.notOk(found.changes.some((x) => x.startsWith('make folder')));
      t.notOk(
        s.runner.calls.some((x) => x.file === 'stat'),
        'the share is not even looked at',
      );
    });
  }
});

t.test('a share that does not answer the stat: a warning, no change', async (t) => {
  const s = await setupTask(fakes, { config: { workspace: { root: '/data/workspace/users' } } });
  s.runner.on({ file: 'stat', result: { exitCode: null, signal: 'SIGKILL', timedOut: true } });
  s.mounts.state = 'findmnt-cifs.json';
  await s.task.apply(s.ctx, await s.task.check(s.ctx));
  const found = await s.task.check(s.ctx);
  t.same(found.changes, []);
  t.match(found.warnings, [/could not check workspace.root \/data\/workspace\/users on the share \(timed out\)/]);
});
