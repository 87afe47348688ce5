import t from 'tap';
import { mkdir, mkdtemp, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fsTypeAt, InProcessChecks, isRemoteFs, STUCK_MS } from '../../../src/tasks/workspace/in-process.js';

const MOUNTINFO = [
  '22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw',
  '30 22 0:26 / /home rw shared:5 - xfs /dev/sdb1 rw',
  '31 22 0:27 / /data/workspace rw,relatime shared:6 - cifs //contosofiles.file.core.windows.net/workspace rw,vers=3.1.1',
  '32 22 0:28 / /mnt/with\\040space rw - nfs4 srv:/x rw',
  '33 30 0:29 / /home/bob rw - fuse.sshfs bob@host: rw',
  '34 31 0:30 / /data/workspace rw - tmpfs tmpfs rw',
].join('\n');

t.test('the filesystem type of a path: longest mount point, octal escapes, later mounts on top', async (t) => {
  t.equal(fsTypeAt(MOUNTINFO, '/etc/passwd'), 'ext4');
  t.equal(fsTypeAt(MOUNTINFO, '/home/alice/notebooks/remote'), 'xfs');
  t.equal(fsTypeAt(MOUNTINFO, '/home/bob/notebooks'), 'fuse.sshfs');
  t.equal(fsTypeAt(MOUNTINFO, '/home/bobby'), 'xfs', 'a mount point is a whole path component');
  t.equal(fsTypeAt(MOUNTINFO, '/mnt/with space/x'), 'nfs4');
  t.equal(fsTypeAt(MOUNTINFO, '/data/workspace/alice'), 'tmpfs', 'the mount made last hides the one below');
  t.equal(fsTypeAt(MOUNTINFO.split('\n').slice(0, 3).join('\n'), '/data/workspace/alice'), 'cifs');
  t.equal(fsTypeAt('', '/x'), undefined);
  for (const remote of ['cifs', 'smb3', 'nfs', 'nfs4', 'fuse.sshfs', 'fuse', 'ceph', '9p', undefined])
    t.ok(isRemoteFs(remote), `${remote} is remote`);
  for (const local of ['ext4', 'xfs', 'btrfs', 'tmpfs', 'overlay', 'zfs']) t.notOk(isRemoteFs(local), `${local} is local`);
});

async function checksWith(info: string): Promise<InProcessChecks> {
  const dir = await mkdtemp(path.join(tmpdir(), 'dsvm-inproc-'));
  await writeFile(path.join(dir, 'mountinfo'), info);
  return new InProcessChecks(path.join(dir, 'mountinfo'));
}

t.test('network filesystems only when the share is known to answer; no mountinfo, no in-process check', async (t) => {
  const c = await checksWith(MOUNTINFO);
  t.equal(await c.attempt(['/home/alice'], false, async () => true), true, 'local: checked here');
  t.equal(await c.attempt(['/data/workspace/alice'], false, async () => true), true, 'tmpfs on top of the share: local');
  const cifsOnly = await checksWith(MOUNTINFO.split('\n').slice(0, 3).join('\n'));
  t.equal(await cifsOnly.attempt(['/data/workspace/alice'], false, async () => true), undefined, 'share not known to answer: a child');
  t.equal(await cifsOnly.attempt(['/data/workspace/alice'], true, async () => true), true, 'share answering: here');
  t.equal(await c.attempt(['/home/bob'], false, async () => true), undefined, 'sshfs home: a child');
  t.equal(await c.attempt(['/home/alice'], false, async () => Promise.reject(new Error('EACCES'))), false, 'an error is "not in place"');
  const none = new InProcessChecks('/nonexistent/mountinfo');
  t.equal(await none.attempt(['/home/alice'], true, async () => true), undefined);
});

t.test('a check that does not return in time: children until it does', async (t) => {
  const c = await checksWith(MOUNTINFO);
  let release!: (v: boolean) => void;
  const t0 = Date.now();
  t.equal(
    await c.attempt(['/home/alice'], false, () => new Promise<boolean>((r) => (release = r))),
    undefined,
    'stuck: the caller uses a child',
  );
  t.ok(Date.now() - t0 < STUCK_MS + 500, 'given up after STUCK_MS');
  t.ok(c.suspect);
  let ran = false;
  t.equal(await c.attempt(['/home/alice'], false, async () => (ran = true)), undefined, 'while one is out, nothing else runs in-process');
  t.notOk(ran);
  release(true);
  await new Promise((r) => setImmediate(r));
  t.notOk(c.suspect, 'back once it returned');
  t.equal(await c.attempt(['/home/alice'], false, async () => true), true);
});

t.test("the $HOME link: the user's own symlink, through real folders of the user, to exactly the target", async (t) => {
  const root = await mkdtemp(path.join(tmpdir(), 'dsvm-inproc-home-'));
  const c = new InProcessChecks('/proc/self/mountinfo');
  const home = path.join(root, 'home');
  const target = path.join(root, 'ws/alice/notebooks');
  await mkdir(path.join(home, 'notebooks'), { recursive: true });
  await symlink(target, path.join(home, 'notebooks/remote'));
  const plan = {
    account: { name: 'alice', uid: process.getuid!(), gid: process.getgid!(), home: '/home/alice' },
    folder: 'alice',
    userDir: path.join(root, 'ws/alice'),
    notebooksDir: target,
    home,
    homeDirs: ['notebooks'],
    homeLink: 'notebooks/remote',
    linkTarget: target,
  };
  const fsType = fsTypeAt(await readFile('/proc/self/mountinfo', 'utf8'), root);
  if (isRemoteFs(fsType)) {
    t.pass(`the temp dir is on ${fsType}: in-process checks do not run there`);
    return;
  }
  t.equal(await c.homeLink(plan), true);
  t.equal(await c.homeLink({ ...plan, account: { ...plan.account, uid: plan.account.uid + 1 } }), false, "a link that is not the user's");
  t.equal(await c.homeLink({ ...plan, linkTarget: `${target}/` }), false, 'the exact target only');
  // notebooks/ replaced by a symlink to a folder elsewhere holding the same link.
  const elsewhere = path.join(root, 'elsewhere');
  await mkdir(elsewhere);
  await rename(path.join(home, 'notebooks/remote'), path.join(elsewhere, 'remote'));
  await rm(path.join(home, 'notebooks'), { recursive: true });
  await symlink(elsewhere, path.join(home, 'notebooks'));
  t.equal(await c.homeLink(plan), false, 'a symlink on the way is not in place');
  await rm(path.join(home, 'notebooks'));
  t.equal(await c.homeLink(plan), false, 'missing: not in place');
  await mkdir(target, { recursive: true });
  t.equal(await c.shareFolders(plan, false), true);
  await rm(target, { recursive: true });
  await symlink(elsewhere, target);
  t.equal(await c.shareFolders(plan, false), false, 'a symlink in place of the notebooks folder');
});
