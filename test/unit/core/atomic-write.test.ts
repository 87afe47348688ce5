// The one atomic writer every root write goes through (src/agent/fsutil.ts),
// against a directory someone filled with symlinks: a symlink at any name it
// could use as its temp file is never followed, a symlink at the target is
// replaced rather than written through, and the login hook's settings cache
// (which used a predictable `<pid>.tmp` name) is written the same way.
import t, { type Test } from 'tap';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { writeFileAtomic, writeIfChanged } from '../../../src/agent/fsutil.js';
import { makePaths } from '../../../src/agent/paths.js';
import { writeSettingsCache } from '../../../src/tasks/workspace/request.js';

const VICTIM = 'root:x:0:0:victim file, must stay as it is\n';

async function world(t: Test): Promise<{ dir: string; victim: string }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'dsvm-atomic-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const victim = path.join(dir, 'victim');
  await writeFile(victim, VICTIM, { mode: 0o600 });
  return { dir, victim };
}

t.test('symlinks planted at the temp names it tries are never followed', async (t) => {
  const { dir, victim } = await world(t);
  const target = path.join(dir, 'out', 'settings.json');
  // The attacker knows (here: is told) the first three names; each is a symlink to the victim.
  const names = [0, 1, 2, 3].map((i) => path.join(dir, 'out', `.guess-${i}.tmp`));
  await writeFileAtomic(path.join(dir, 'out', 'seed'), 'x');
  for (const n of names.slice(0, 3)) await symlink(victim, n);
  let next = 0;
  await writeFileAtomic(target, '{"ok":true}', { mode: 0o644 }, () => names[next++]!);
  t.equal(await readFile(victim, 'utf8'), VICTIM, 'the victim is untouched');
  t.equal(await readFile(target, 'utf8'), '{"ok":true}', 'the target has the new content');
  t.equal(next, 4, 'three taken names skipped, the fourth used');
  for (const n of names.slice(0, 3)) t.equal(await readlink(n), victim, `${path.basename(n)}: the planted link is left as it was`);
  t.notOk((await lstat(target)).isSymbolicLink(), 'the target is a plain file');
});

t.test('every candidate name taken: it fails and writes nothing', async (t) => {
  const { dir, victim } = await world(t);
  const target = path.join(dir, 'settings.json');
  const dangling = path.join(dir, 'would-be-created');
  await symlink(victim, path.join(dir, '.taken.tmp'));
  await symlink(dangling, path.join(dir, '.dangling.tmp'));
  let i = 0;
  const names = (): string => path.join(dir, i++ % 2 ? '.taken.tmp' : '.dangling.tmp');
  await t.rejects(writeFileAtomic(target, 'new', {}, names), { code: 'EEXIST' });
  t.equal(await readFile(victim, 'utf8'), VICTIM, 'the victim is untouched');
  await t.rejects(lstat(dangling), { code: 'ENOENT' }, 'a dangling link did not make its target appear');
  await t.rejects(lstat(target), { code: 'ENOENT' }, 'no target written');
});

t.test('repeated writes leave no temp file behind', async (t) => {
  const { dir } = await world(t);
  for (let i = 0; i < 5; i++) await writeFileAtomic(path.join(dir, 'g'), String(i));
  t.equal(await readFile(path.join(dir, 'g'), 'utf8'), '4');
  t.same((await readdir(dir)).sort(), ['g', 'victim'], 'no temp file left');
});

t.test('a symlink at the target itself is replaced, not written through', async (t) => {
  const { dir, victim } = await world(t);
  const target = path.join(dir, 'login-settings.json');
  await symlink(victim, target);
  await writeFileAtomic(target, '{}');
  t.equal(await readFile(victim, 'utf8'), VICTIM, 'the victim is untouched');
  t.notOk((await lstat(target)).isSymbolicLink(), 'the link itself was replaced');
});

t.test('writeIfChanged: same content behind a symlink: no chmod through it', async (t) => {
  const { dir, victim } = await world(t);
  const target = path.join(dir, 'unit.mount');
  await symlink(victim, target);
  await t.rejects(writeIfChanged(target, VICTIM, { mode: 0o644 }), { code: 'ELOOP' });
  t.equal((await lstat(victim)).mode & 0o777, 0o600, "the victim's mode is unchanged");
});

t.test(
  "the login hook's settings cache: symlinks at its old predictable names are not followed",
  { skip: process.getuid?.() !== 0 && 'the cache is written only by root' },
  async (t) => {
    const { dir, victim } = await world(t);
    const paths = makePaths(dir);
    await mkdir(paths.runDir, { recursive: true });
    // The name the hook used to write: `<file>.<pid>.tmp`, for this process and its neighbours.
    for (let pid = process.pid - 50; pid <= process.pid + 50; pid++) await symlink(victim, `${paths.loginSettingsFile}.${pid}.tmp`);
    await writeSettingsCache(paths, { key: 'k', loginTimeoutMs: 3000 });
    t.equal(await readFile(victim, 'utf8'), VICTIM, 'the victim is untouched');
    t.same(JSON.parse(await readFile(paths.loginSettingsFile, 'utf8')), { key: 'k', loginTimeoutMs: 3000 });
  },
);
