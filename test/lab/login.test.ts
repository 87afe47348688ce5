/**
 * The login hook against real parts: Linux-PAM (pamtester, a pam_exec line
 * naming bin/dsvm-agent by absolute path), real accounts, real privilege
 * drops, a real hanging file system. Root only.
 *
 * Everything happens in a private mount namespace with throwaway /etc,
 * /home, /root, /data and /run (overlays and tmpfs), so accounts can be
 * created and attacked without touching the host. Accounts are local
 * (useradd): the filesystem behaviour is what is under test here; NSS
 * through sssd is covered by the domain-join lab tests.
 *
 * A hanging share is a FUSE mount whose server never answers: /dev/fuse is
 * opened and mounted, and the descriptor is held but never read. Every
 * access to it blocks in the kernel until SIGKILL, as on a CIFS mount whose
 * server died.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const agent = path.join(repo, 'bin', 'dsvm-agent');
const TIMEOUT_MS = 3000;

const SETUP = String.raw`
set -euo pipefail
mount --make-rprivate /
base=$1
for d in etc home root; do
  mkdir -p "$base/$d-u" "$base/$d-w"
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$base/$d-u,workdir=$base/$d-w" "/$d"
done
mkdir -p /data
mount -t tmpfs -o mode=0755 tmpfs /data
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /data/workspace
echo ready >"$base/ready"
exec sleep infinity
`;

let holder: ChildProcess;
let base: string;

/** Run a command inside the namespace; never through a shell unless the test says so. */
function ns(argv: string[], opts: { env?: Record<string, string>; input?: string; timeoutMs?: number } = {}) {
  const t0 = Date.now();
  const r = spawnSync(
    'nsenter',
    [
      '-t',
      String(holder.pid),
      '-m',
      '--',
      'env',
      '-i',
      'PATH=/usr/sbin:/usr/bin:/sbin:/bin',
      ...Object.entries(opts.env ?? {}).map(([k, v]) => `${k}=${v}`),
      ...argv,
    ],
    {
      encoding: 'utf8',
      // stdin must not be a socket: bash would take itself for an rsh session and read ~/.bashrc.
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      ...(opts.input === undefined ? {} : { input: opts.input }),
      timeout: opts.timeoutMs ?? 300_000,
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - t0 };
}
const sh = (script: string) => ns(['bash', '--norc', '--noprofile', '-c', script]);
const must = (script: string): string => {
  const r = sh(script);
  if (r.code !== 0) throw new Error(`${script}: ${r.stderr}`);
  return r.stdout;
};

/** A login through the real PAM stack: pamtester opens and closes a session. */
function pamLogin(user: string) {
  return ns(['pamtester', 'dsvm-login-test', user, 'open_session', 'close_session']);
}

/** Everything under a folder with owner, type and mtime: "nothing changed" means this is equal. */
function snapshot(dir: string, depth = 64): string {
  return must(`find ${dir} -maxdepth ${depth} -printf '%p %u %y %T@ %l\\n' 2>/dev/null | sort || true`);
}

function config(extra = ''): void {
  must(`mkdir -p /etc/dsvm-agent && cat >/etc/dsvm-agent/config.yaml <<'EOF'
domain: { name: contoso.test, joinUser: dsvm-join, joinPassword: { file: /etc/dsvm-agent/join-password }, allowGroups: [dsvm-users] }
workspace: { loginTimeoutMs: ${TIMEOUT_MS} }
${extra}
EOF`);
}

t.before(async () => {
  if (process.getuid?.() !== 0) throw new Error('the login lab test needs root');
  base = await mkdtemp(path.join(tmpdir(), 'dsvm-login-lab-'));
  holder = spawn('unshare', ['-m', '--propagation', 'private', 'bash', '--norc', '-c', SETUP, 'setup', base], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  for (let i = 0; i < 100; i++) {
    if (await readFile(path.join(base, 'ready'), 'utf8').catch(() => '')) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  must(`groupadd dsvm-users
for u in alice bob carol mallory eve1 eve2 eve3 eve4 eve5 dave; do useradd -m -s /bin/bash "$u"; done
useradd -m -s /bin/bash --badname Jean.Dupont
for u in alice bob carol Jean.Dupont eve1 eve2 eve3 eve4 eve5 dave; do usermod -aG dsvm-users "$u"; done
for i in $(seq -w 1 50); do useradd -m -G dsvm-users "load$i"; done
printf '%s\n' 'auth required pam_permit.so' 'account required pam_permit.so' \
  'session required pam_permit.so' 'session optional pam_exec.so quiet log=/run/pam-exec.log type=open_session ${agent} pam-session' >/etc/pam.d/dsvm-login-test`);
  config();
});

t.teardown(async () => {
  holder?.kill('SIGKILL');
  // The overlays die with the namespace; their upper layers are plain folders.
  await new Promise((r) => holder?.once('exit', r));
  await rm(base, { recursive: true, force: true });
});

t.test('first login of alice creates both sides; the second changes nothing', async (t) => {
  const first = pamLogin('alice');
  t.equal(first.code, 0, first.stderr);
  t.comment(must('cat /run/pam-exec.log'));
  t.equal(must('stat -c "%F %U %a" /data/workspace/alice /data/workspace/alice/notebooks'), 'directory alice 700\ndirectory alice 700\n');
  t.equal(must('readlink /home/alice/notebooks/remote'), '/data/workspace/alice/notebooks\n');
  t.equal(
    must('stat -c "%U" /home/alice/notebooks /home/alice/notebooks/remote'),
    'alice\nalice\n',
    '$HOME entries belong to alice (made as alice)',
  );
  const before = snapshot('/data/workspace') + snapshot('/home/alice');
  await new Promise((r) => setTimeout(r, 20));
  t.equal(pamLogin('alice').code, 0);
  t.equal(snapshot('/data/workspace') + snapshot('/home/alice'), before, 'second login: byte-identical trees, same mtimes');
});

t.test('Jean.Dupont gets a correct, safe folder', async (t) => {
  t.equal(pamLogin('Jean.Dupont').code, 0);
  t.equal(must('readlink /home/Jean.Dupont/notebooks/remote'), '/data/workspace/jean.dupont/notebooks\n');
  t.equal(must('stat -c "%U" /data/workspace/jean.dupont/notebooks'), 'Jean.Dupont\n');
});

t.test('a system account and a user in no allowed group get nothing', async (t) => {
  const before = snapshot('/data/workspace');
  for (const user of ['daemon', 'mallory']) t.equal(pamLogin(user).code, 0, user);
  t.equal(snapshot('/data/workspace'), before, 'no folder on the share');
  t.equal(sh('test -e /home/mallory/notebooks').code, 1, "nothing in mallory's home");
});

t.test('attacks: nothing is written outside what the user could write herself', async (t) => {
  const shadow = must('sha256sum /etc/shadow');
  must(`ln -s /etc /home/eve1/notebooks && chown -h eve1: /home/eve1/notebooks
ln -s /root /home/eve2/notebooks && chown -h eve2: /home/eve2/notebooks
mkdir /home/eve3/notebooks && ln -s /etc/shadow /home/eve3/notebooks/remote && chown -hR eve3: /home/eve3/notebooks
mkdir /home/eve4/notebooks && mkfifo /home/eve4/notebooks/remote && chown -R eve4: /home/eve4/notebooks`);
  for (const user of ['eve1', 'eve2', 'eve3', 'eve4']) {
    const r = pamLogin(user);
    t.equal(r.code, 0, `${user}: login succeeds`);
    t.ok(r.ms < TIMEOUT_MS + 2000, `${user}: in ${r.ms} ms`);
  }
  // /etc and /root are overlays on the host's, which other work may change
  // meanwhile: assert what an attack would leave, not byte-identity.
  for (const dir of ['/etc', '/root']) {
    t.equal(sh(`test -e ${dir}/remote -o -L ${dir}/remote`).code, 1, `no ${dir}/remote`);
    t.equal(
      must(`find ${dir} -xdev -maxdepth 2 \\( -user eve1 -o -user eve2 -o -user eve3 -o -user eve4 \\) -print`),
      '',
      `nothing in ${dir} belongs to the attackers`,
    );
  }
  t.equal(must('sha256sum /etc/shadow'), shadow, '/etc/shadow untouched');
  t.equal(must('readlink /home/eve3/notebooks/remote'), '/etc/shadow\n', "eve3's own link left as she made it");
  t.equal(must('stat -c %F /home/eve4/notebooks/remote'), 'fifo\n', "eve4's FIFO left alone");

  // On a share where everyone may create anything (CIFS with dir_mode=0777), bob plants carol's folder.
  must(`chmod 0777 /data/workspace && mkdir -p /data/workspace/bob && chown bob: /data/workspace/bob
su bob -s /bin/sh -c 'ln -s /data/workspace/bob /data/workspace/carol'`);
  const bobs = snapshot('/data/workspace/bob/');
  t.equal(pamLogin('carol').code, 0);
  t.equal(snapshot('/data/workspace/bob/'), bobs, "nothing created in bob's folder");
  t.equal(sh('test -e /home/carol/notebooks/remote').code, 1, 'no link for carol into what bob planted');
  must('chmod 0755 /data/workspace');

  // Names no account should have: the hook refuses them before NSS, exits 0, creates nothing.
  const ws = snapshot('/data/workspace');
  const homes = snapshot('/home');
  for (const name of ['../x', '../../etc', 'alice\nroot', 'a'.repeat(300), '1000']) {
    const r = ns([agent, 'pam-session'], { env: { PAM_TYPE: 'open_session', PAM_USER: name } });
    t.equal(r.code, 0, `${JSON.stringify(name.slice(0, 20))}: exit 0`);
    t.equal(r.stdout, '', 'nothing on stdout');
  }
  t.equal(snapshot('/data/workspace') + snapshot('/home'), ws + homes, 'nothing created for hostile names');
});

/** A small daemon: the real control socket and LoginService, as `dsvm-agent run` serves them. */
async function startDaemon(shareHealthy: boolean | undefined): Promise<() => void> {
  const file = path.join(base, `daemon-${Date.now()}.mts`);
  await writeFile(
    file,
    `import { loadConfig } from '${repo}/src/agent/config.ts';
import { createBase } from '${repo}/src/agent/context.ts';
import { serveIpc } from '${repo}/src/agent/ipc.ts';
import { LoginService } from '${repo}/src/tasks/workspace/service.ts';
const base = createBase({ logLevel: 'warn' });
const cfg = await loadConfig('/etc/dsvm-agent/config.yaml');
const logins = new LoginService({ cfg, paths: base.paths, run: base.run, log: base.log });
await serveIpc(base.paths.socketFile, async (req) => req.op === 'login' ? logins.handle(req.user, { deadlineMs: req.deadlineMs, shareHealthy: ${JSON.stringify(shareHealthy)} }) : {}, base.log);
console.log('listening');
`,
  );
  // Its own process group: nsenter, tsx and node all go at the end.
  const d = spawn('nsenter', ['-t', String(holder.pid), '-m', '--', path.join(repo, 'node_modules', '.bin', 'tsx'), file], {
    cwd: repo,
    stdio: ['ignore', 'pipe', 'inherit'],
    detached: true,
  });
  await new Promise((r) => d.stdout!.once('data', r));
  return () => {
    process.kill(-d.pid!, 'SIGKILL');
    sh('rm -f /run/dsvm-agent/agent.sock');
  };
}

function hookMany(users: string[]): Promise<{ user: string; code: number | null; ms: number }[]> {
  return Promise.all(
    users.map(
      (user) =>
        new Promise<{ user: string; code: number | null; ms: number }>((resolve) => {
          const t0 = Date.now();
          const c = spawn(
            'nsenter',
            [
              '-t',
              String(holder.pid),
              '-m',
              '--',
              'env',
              '-i',
              'PATH=/usr/bin:/bin',
              'PAM_TYPE=open_session',
              `PAM_USER=${user}`,
              agent,
              'pam-session',
            ],
            { stdio: 'ignore' },
          );
          c.on('close', (code) => resolve({ user, code, ms: Date.now() - t0 }));
        }),
    ),
  );
}

t.test('10 concurrent logins of one user and 50 of different users, through the daemon', async (t) => {
  const stop = await startDaemon(true);
  t.teardown(stop);
  const same = await hookMany(Array.from({ length: 10 }, () => 'dave'));
  const many = await hookMany(Array.from({ length: 50 }, (_, i) => `load${String(i + 1).padStart(2, '0')}`));
  for (const r of [...same, ...many]) t.equal(r.code, 0, `${r.user} exit 0`);
  // The bound counts from each hook's start; 60 Node processes starting at once on 2 cores take their own time to get there.
  t.ok(Math.max(...same.map((r) => r.ms)) < TIMEOUT_MS + 3000, `same user: slowest ${Math.max(...same.map((r) => r.ms))} ms`);
  // Whatever was not done in time is finished by the daemon: wait for it (100 first-login
  // children on 2 cores take a while), then check one consistent result.
  const waited = Date.now();
  while (
    Date.now() - waited < 120_000 &&
    sh('for i in $(seq -w 1 50); do test -L /home/load$i/notebooks/remote || exit 1; done; test -L /home/dave/notebooks/remote').code !== 0
  ) {
    await new Promise((r) => setTimeout(r, 1000));
  }
  t.comment(`background work finished ${Date.now() - waited} ms after the last hook returned`);
  t.equal(must('readlink /home/dave/notebooks/remote'), '/data/workspace/dave/notebooks\n');
  t.equal(must('ls /data/workspace | grep -c "^dave"'), '1\n', 'one folder for dave');
  const links = must('for i in $(seq -w 1 50); do readlink /home/load$i/notebooks/remote; done');
  t.equal(
    links,
    Array.from({ length: 50 }, (_, i) => `/data/workspace/load${String(i + 1).padStart(2, '0')}/notebooks\n`).join(''),
    'every user has the right link',
  );
  t.equal(must('ls -d /data/workspace/load*/notebooks | wc -l'), '50\n', 'every user has a folder');
});

t.test('share hung (a FUSE mount that never answers): login completes within the bound', async (t) => {
  config('share: { account: contosofiles, name: workspace, key: { file: /etc/dsvm-agent/storage-key } }');
  // The hanging mount goes over /data/workspace; its holder keeps /dev/fuse open and never reads it.
  const fuse = spawn(
    'nsenter',
    [
      '-t',
      String(holder.pid),
      '-m',
      '--',
      'bash',
      '--norc',
      '-c',
      'exec 3<>/dev/fuse; mount -t fuse -o fd=3,rootmode=40000,user_id=0,group_id=0 dsvm-hang /data/workspace; echo mounted; exec sleep infinity',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise((r) => fuse.stdout!.once('data', r));
  t.teardown(() => {
    fuse.kill('SIGKILL');
    sh('umount -l /data/workspace || true');
  });
  const probe = sh('timeout -s KILL 1 stat /data/workspace/x');
  t.ok(probe.code !== 0 && probe.ms >= 900, `the mount really hangs (stat killed after ${probe.ms} ms)`);
  const nodeStart = ns(['node', '-e', '0']).ms;
  // No daemon: the hook does the work in children it kills at the deadline.
  const r = ns([agent, 'pam-session'], { env: { PAM_TYPE: 'open_session', PAM_USER: 'eve5' }, timeoutMs: 30_000 });
  t.equal(r.code, 0);
  t.ok(r.ms < TIMEOUT_MS + 200 + nodeStart, `no daemon: ${r.ms} ms (bound ${TIMEOUT_MS} + 200 ms, node start-up ${nodeStart} ms)`);
  t.equal(must('readlink /home/eve5/notebooks/remote'), '/data/workspace/eve5/notebooks\n', 'the $HOME link is made anyway (it dangles)');
  // With the daemon knowing the share is unhealthy: no share work at all, link made, fast.
  const stop = await startDaemon(false);
  t.teardown(stop);
  const d = ns([agent, 'pam-session'], { env: { PAM_TYPE: 'open_session', PAM_USER: 'bob' }, timeoutMs: 30_000 });
  t.equal(d.code, 0);
  t.ok(d.ms < TIMEOUT_MS + 200 + nodeStart, `daemon, share unhealthy: ${d.ms} ms`);
  t.equal(must('readlink /home/bob/notebooks/remote'), '/data/workspace/bob/notebooks\n');
});
