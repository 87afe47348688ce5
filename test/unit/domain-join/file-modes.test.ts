import t from 'tap';
import { chmod, chown, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { runTasks } from '../../../src/agent/task.js';
import { domainJoinTask } from '../../../src/tasks/domain-join/index.js';
import { fileDifference, SSSD_ACCEPTED, type ManagedFile, type Writer } from '../../../src/tasks/domain-join/files.js';
import { backoff, setup, type World } from './world.js';

const root: Writer = { uid: 0, gid: 0, gidOf: (name) => ({ sssd: 118, users: 100 })[name] };
const sssdConf: ManagedFile = { label: 'sssd.conf', path: '/etc/sssd/sssd.conf', content: 'x\n', mode: 0o600, ...SSSD_ACCEPTED };
const sudoers: ManagedFile = { label: 'sudoers drop-in', path: '/etc/sudoers.d/dsvm-agent', content: 'x\n', mode: 0o440 };
const file = (mode: number, uid = 0, gid = 0, content = 'x\n') => ({ content, st: { mode: 0o100000 | mode, uid, gid } });

t.test('what differs names the attribute and both values; sssd.conf accepts what sssd.service does to it', async (t) => {
  const cases: { name: string; f: ManagedFile; current: ReturnType<typeof file> | undefined; want: string | undefined }[] = [
    { name: 'as written: 0600 root:root', f: sssdConf, current: file(0o600), want: undefined },
    { name: "trixie's unit: chmod g+r → 0640 root:root", f: sssdConf, current: file(0o640), want: undefined },
    { name: "upstream's unit as the sssd user: 0640 root:sssd", f: sssdConf, current: file(0o640, 0, 118), want: undefined },
    { name: 'world-readable: never', f: sssdConf, current: file(0o644), want: 'mode 0644, want 0600 or 0640' },
    { name: 'group-writable: never', f: sssdConf, current: file(0o660), want: 'mode 0660, want 0600 or 0640' },
    { name: 'another group: never', f: sssdConf, current: file(0o640, 0, 100), want: 'group gid 100, want 0 or 118' },
    { name: 'another owner: never', f: sssdConf, current: file(0o600, 1000), want: 'owner uid 1000, want 0' },
    {
      name: 'content',
      f: sssdConf,
      current: file(0o600, 0, 0, 'x\nold line\n'),
      want: 'content 11 bytes, want 2 bytes (first difference at line 2)',
    },
    { name: 'missing', f: sssdConf, current: undefined, want: 'missing' },
    { name: 'to be removed', f: { ...sssdConf, content: undefined }, current: file(0o600), want: 'exists, want it removed' },
    { name: 'sudoers: one exact mode (nothing else rewrites it)', f: sudoers, current: file(0o640), want: 'mode 0640, want 0440' },
  ];
  for (const c of cases) t.equal(fileDifference(c.f, c.current, root), c.want, c.name);
});

/** What Debian 13's sssd.service runs before every start (ExecStartPre), on the test's tree. */
async function trixieExecStartPre(dir: string, owner: { uid: number; gid: number }): Promise<void> {
  // chown -f -R root:root /etc/sssd (root:root is the agent's own uid/gid on a VM; here the test's)
  // chmod -f -R g+r /etc/sssd
  const walk = async (p: string): Promise<void> => {
    const st = await stat(p);
    await chown(p, owner.uid, owner.gid);
    await chmod(p, (st.mode & 0o7777) | 0o040);
    if (st.isDirectory()) for (const e of await readdir(p)) await walk(path.join(p, e));
  };
  await walk(dir);
}

t.test("Debian 13: sssd.service's ExecStartPre turns sssd.conf 0640 on every start; the join still converges", async (t) => {
  const w: World = { existing: {} };
  const tc = await setup(w);
  const me = { uid: process.geteuid!(), gid: process.getegid!() };
  const restart = tc.services.restart.bind(tc.services);
  tc.services.restart = async (unit) => {
    if (unit === 'sssd') await trixieExecStartPre(path.dirname(tc.paths.sssdConf), me);
    await restart(unit);
  };
  const [out] = await runTasks([domainJoinTask], tc.ctx, { backoff });
  t.equal(out?.status, 'ok', out?.status === 'failed' ? out.error.message : 'converged');
  t.equal((await stat(tc.paths.sssdConf)).mode & 0o777, 0o640, "sssd's unit made it 0640");
  const again = await domainJoinTask.check(tc.ctx);
  t.same(again.changes, [], 'the next check (next boot) sees nothing to change, and does not restart sssd');
});

t.test('a re-check that fails says which attribute differs, and the value on each side', async (t) => {
  const w: World = { existing: {} };
  const tc = await setup(w);
  const restart = tc.services.restart.bind(tc.services);
  tc.services.restart = async (unit) => {
    // Something on this system makes sssd.conf world-readable at each start: never accepted.
    if (unit === 'sssd') await chmod(tc.paths.sssdConf, 0o644);
    await restart(unit);
  };
  const [out] = await runTasks([domainJoinTask], tc.ctx, { backoff });
  t.equal(out?.status, 'failed');
  t.equal(
    out?.status === 'failed' ? out.error.message : '',
    `still differs after apply: write ${tc.paths.sssdConf} (mode 0644, want 0600 or 0640); (re)start sssd (sssd.conf changes)`,
  );
});
