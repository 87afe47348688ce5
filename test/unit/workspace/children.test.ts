import { execFile } from 'node:child_process';
import { chown, lstat, mkdir, mkdtemp, readdir, readlink, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { HOME_CHILD_SCRIPT, parseHomeReport } from '../../../src/tasks/workspace/home.js';
import { parseShareReport, SHARE_CHILD_SCRIPT } from '../../../src/tasks/workspace/share.js';

/**
 * The two child programs, run for real by Node in a temp dir (as the test's
 * own user: the lab test runs them as other users through PAM).
 */
const exec = promisify(execFile);

async function runChild(script: string, spec: object): Promise<string> {
  const { stdout } = await exec(process.execPath, ['-e', script, '--', JSON.stringify(spec)], {
    cwd: '/',
    env: { PATH: '/usr/bin:/bin', LC_ALL: 'C' },
    timeout: 10_000,
  });
  return stdout;
}

async function fixture(): Promise<{ dir: string; home: string; outside: string; target: string }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'dsvm-children-'));
  const home = path.join(dir, 'home', 'alice');
  const outside = path.join(dir, 'outside');
  await mkdir(home, { recursive: true });
  await mkdir(outside);
  await writeFile(path.join(outside, 'shadow'), 'secret');
  return { dir, home, outside, target: path.join(dir, 'data', 'workspace', 'alice', 'notebooks') };
}

const homeRun = async (f: { home: string; target: string }) =>
  parseHomeReport(
    await runChild(HOME_CHILD_SCRIPT, { home: f.home, dirs: ['notebooks'], link: 'notebooks/remote', target: f.target }),
    'bad output',
  );

async function listing(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).sort();
}

// Each case: what the user (or an attacker) left in $HOME, and what the child must report.
const homeCases: { name: string; setup: (f: Awaited<ReturnType<typeof fixture>>) => Promise<void>; state: string; warning?: RegExp }[] = [
  { name: 'fresh home: folder and link created', setup: async () => undefined, state: 'created' },
  {
    name: '~/notebooks is a symlink to a folder elsewhere (/etc, /root)',
    setup: (f) => symlink(f.outside, path.join(f.home, 'notebooks')),
    state: 'blocked',
    warning: /symbolic link, not a folder: left alone/,
  },
  {
    name: '~/notebooks/remote is a symlink to a secret file (/etc/shadow)',
    setup: async (f) => {
      await mkdir(path.join(f.home, 'notebooks'));
      await symlink(path.join(f.outside, 'shadow'), path.join(f.home, 'notebooks', 'remote'));
    },
    state: 'blocked',
    warning: /points to .*shadow.*left alone/,
  },
  {
    name: '~/notebooks/remote is a FIFO (must not hang)',
    setup: async (f) => {
      await mkdir(path.join(f.home, 'notebooks'));
      await exec('mkfifo', [path.join(f.home, 'notebooks', 'remote')]);
    },
    state: 'blocked',
    warning: /is a FIFO: left alone/,
  },
  {
    name: "~/notebooks/remote is the user's own folder with data",
    setup: async (f) => {
      await mkdir(path.join(f.home, 'notebooks', 'remote'), { recursive: true });
      await writeFile(path.join(f.home, 'notebooks', 'remote', 'mine.ipynb'), '{}');
    },
    state: 'blocked',
    warning: /is a folder: left alone/,
  },
  {
    name: '~/notebooks is a file',
    setup: (f) => writeFile(path.join(f.home, 'notebooks'), 'x'),
    state: 'blocked',
    warning: /is a file, not a folder/,
  },
];

for (const c of homeCases) {
  t.test(`home child: ${c.name}`, async (t) => {
    const f = await fixture();
    await c.setup(f);
    const before = await listing(f.outside);
    const beforeHome = await listing(f.home);
    const r = await homeRun(f);
    t.equal(r.state, c.state, JSON.stringify(r));
    if (c.warning) t.match(r.warnings.join('\n'), c.warning);
    t.same(await listing(f.outside), before, 'nothing written outside $HOME');
    if (c.state === 'blocked') t.same(await listing(f.home), beforeHome, 'nothing changed in $HOME');
    else t.equal(await readlink(path.join(f.home, 'notebooks', 'remote')), f.target);
  });
}

t.test('home child: second run changes nothing; missing home is reported', async (t) => {
  const f = await fixture();
  t.equal((await homeRun(f)).state, 'created');
  const again = await homeRun(f);
  t.same(again, { state: 'ok', changes: [], warnings: [] });
  const gone = await homeRun({ home: path.join(f.dir, 'home', 'nobody'), target: f.target });
  t.equal(gone.state, 'home-missing');
});

const shareRun = async (root: string, extra: object = {}) =>
  parseShareReport(
    await runChild(SHARE_CHILD_SCRIPT, {
      root,
      folder: 'alice',
      notebooks: 'notebooks',
      uid: process.getuid!(),
      gid: process.getgid!(),
      mode: 0o700,
      createRoot: false,
      ...extra,
    }),
    'bad output',
  );

const shareCases: { name: string; setup: (root: string, other: string) => Promise<void>; state: string; warning?: RegExp }[] = [
  { name: 'fresh: both folders created', setup: async () => undefined, state: 'created' },
  {
    name: 'user folder pre-created by bob as a symlink to his folder',
    setup: (root, other) => symlink(other, path.join(root, 'alice')),
    state: 'refused',
    warning: /symbolic link to .*not followed/,
  },
  {
    name: 'notebooks pre-created as a symlink',
    setup: async (root, other) => {
      await mkdir(path.join(root, 'alice'));
      await symlink(other, path.join(root, 'alice', 'notebooks'));
    },
    state: 'refused',
    warning: /symbolic link/,
  },
  { name: 'user folder is a file', setup: (root) => writeFile(path.join(root, 'alice'), 'x'), state: 'refused', warning: /is a file/ },
];

for (const c of shareCases) {
  t.test(`share child: ${c.name}`, async (t) => {
    const dir = await mkdtemp(path.join(tmpdir(), 'dsvm-share-'));
    const root = path.join(dir, 'workspace');
    const other = path.join(dir, 'bob-folder');
    await mkdir(root);
    await mkdir(other);
    await c.setup(root, other);
    const r = await shareRun(root);
    t.equal(r.state, c.state, JSON.stringify(r));
    if (c.warning) t.match(r.warnings.join('\n'), c.warning);
    t.same(await readdir(other), [], "nothing created in bob's folder");
    if (c.state === 'created') {
      const st = await stat(path.join(root, 'alice', 'notebooks'));
      t.ok(st.isDirectory());
      t.equal(st.mode & 0o777, 0o700, 'mode set where the file system honours it');
      t.equal(r.ownershipHonoured, true);
      t.same(await shareRun(root), { state: 'ok', changes: [], warnings: [], ownershipHonoured: true }, 'second run: nothing');
    }
  });
}

t.test('share child: the workspace root', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'dsvm-share-'));
  const root = path.join(dir, 'data', 'workspace');
  t.equal((await shareRun(root)).state, 'root-missing', 'a missing mount point is not created');
  t.equal((await lstat(dir)).isDirectory(), true);
  t.same(await readdir(dir), [], 'nothing created');
  t.equal((await shareRun(root, { createRoot: true })).state, 'created', 'local workspaces (no share): root created');
});

t.test(
  'share child: a folder owned by another user is left alone',
  { skip: process.getuid!() !== 0 && 'needs root to chown' },
  async (t) => {
    const dir = await mkdtemp(path.join(tmpdir(), 'dsvm-share-'));
    await mkdir(path.join(dir, 'alice'));
    await chown(path.join(dir, 'alice'), 4242, 4242);
    const r = await shareRun(dir, { uid: 1001, gid: 1001 });
    t.equal(r.state, 'refused');
    t.match(r.warnings.join(), /belongs to uid 4242/);
    const fresh = await mkdtemp(path.join(tmpdir(), 'dsvm-share-'));
    t.equal((await shareRun(fresh, { uid: 1001, gid: 1001 })).state, 'created');
    const st = await stat(path.join(fresh, 'alice', 'notebooks'));
    t.same([st.uid, st.gid], [1001, 1001], 'created folders belong to the user');
  },
);
