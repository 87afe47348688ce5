/**
 * The login hook as root under a hostile PAM environment, through the real
 * PAM stack and the package's own /usr/sbin/dsvm-agent (packaging/deb/dsvm-agent,
 * with the runtime and dist/ of this checkout in place). alice fills her
 * ~/.pam_environment, which `pam_env user_readenv=1` (Debian's sshd stack)
 * hands to every later module, pam_exec included:
 *
 * - NODE_OPTIONS=--require=<evil.js>: would run her code as uid 0;
 * - DSVM_AGENT_ROOT=<her tree>: would make root read her config and ask her
 *   own "daemon" (a socket she serves), whose answer made the hook write the
 *   settings cache into her tree through a predictable `<pid>.tmp` name,
 *   where she planted symlinks to a root-owned victim file.
 *
 * None of it may take effect, and the login still gets its workspace. A
 * second login, through a real daemon, plants symlinks (as root: the worst
 * case) at the cache's old temp names in /run/dsvm-agent itself.
 *
 * Everything runs in a private mount namespace with throwaway /etc, /home,
 * /root, /usr, /var (overlays) and /run, /data (tmpfs), like login.test.ts.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { lchownSync, readFileSync, symlinkSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const VICTIM = 'victim: root-owned, must never change\n';
/** How many pids after the current one get a planted symlink at `<cache>.<pid>.tmp`. */
const PLANTED = 20_000;

const SETUP = String.raw`
set -euo pipefail
mount --make-rprivate /
base=$1
for d in etc home root usr var; do
  mkdir -p "$base/$d-u" "$base/$d-w"
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$base/$d-u,workdir=$base/$d-w" "/$d"
done
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p "$base/data"
echo ready >"$base/ready"
exec sleep infinity
`;

let holder: ChildProcess;
let base: string;
/** The workspace root: a folder of this run's own (no /data on the host is touched). */
let workspace: string;

function ns(argv: string[], opts: { env?: Record<string, string>; timeoutMs?: number } = {}) {
  const env = Object.entries(opts.env ?? {}).map(([k, v]) => `${k}=${v}`);
  const r = spawnSync(
    'nsenter',
    ['-t', String(holder.pid), '-m', '--', 'env', '-i', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin', ...env, ...argv],
    {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: opts.timeoutMs ?? 120_000,
    },
  );
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
/** A script run inside the namespace; its arguments are $1... (never spliced into the text). */
const sh = (script: string, ...args: string[]) => ns(['bash', '--norc', '--noprofile', '-c', script, 'sh', ...args]);
const must = (script: string, ...args: string[]): string => {
  const r = sh(script, ...args);
  if (r.code !== 0) throw new Error(`${script}: ${r.stderr}`);
  return r.stdout;
};
const pamLogin = (user: string) => ns(['pamtester', 'dsvm-hostile', user, 'open_session', 'close_session']);

/**
 * Symlinks at `<file>.<pid>.tmp` for the next PLANTED pids, owned by `owner`: every name the old
 * cache writer could pick. Made from this process through the namespace's root in /proc, without
 * a fork per link: forks would use up the very pids planted for.
 */
function plant(file: string, target: string, owner: string): void {
  const uid = Number(must('id -u "$1"', owner).trim());
  const next = Number(readFileSync('/proc/sys/kernel/ns_last_pid', 'utf8').trim()) + 1;
  const inNs = `/proc/${holder.pid}/root${file}`;
  for (let pid = next; pid < next + PLANTED; pid++) {
    symlinkSync(target, `${inNs}.${pid}.tmp`);
    lchownSync(`${inNs}.${pid}.tmp`, uid, uid);
  }
}

/** A process in the namespace, in its own process group (killed as a whole). */
function background(argv: string[]): { proc: ChildProcess; stop: () => void } {
  const proc = spawn('nsenter', ['-t', String(holder.pid), '-m', '--', ...argv], {
    cwd: repo,
    stdio: ['ignore', 'pipe', 'inherit'],
    detached: true,
  });
  return { proc, stop: () => void process.kill(-proc.pid!, 'SIGKILL') };
}

t.before(async () => {
  if (process.getuid?.() !== 0) throw new Error('the hostile-environment lab test needs root');
  base = await mkdtemp(path.join(tmpdir(), 'dsvm-hostile-'));
  await chmod(base, 0o755);
  workspace = path.join(base, 'data', 'workspace');
  holder = spawn('unshare', ['-m', '--propagation', 'private', 'bash', '--norc', '-c', SETUP, 'setup', base], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  for (let i = 0; i < 100; i++) {
    if (await readFile(path.join(base, 'ready'), 'utf8').catch(() => '')) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  // The package's layout: /usr/sbin/dsvm-agent (the shipped script), its runtime and dist/.
  must(
    `set -e
mkdir -p /usr/lib/dsvm-agent "$4"
ln -sfn "$1" /usr/lib/dsvm-agent/node
ln -sfn "$2/dist" /usr/lib/dsvm-agent/dist
install -m 0755 "$2/packaging/deb/dsvm-agent" /usr/sbin/dsvm-agent
groupadd dsvm-users
for u in alice bob; do useradd -m -s /bin/bash -G dsvm-users "$u"; done
mkdir -p /etc/dsvm-agent
printf '%s\n' \
  'domain: { name: contoso.test, joinUser: dsvm-join, joinPassword: { file: /etc/dsvm-agent/join-password }, allowGroups: [dsvm-users] }' \
  "workspace: { root: $4, loginTimeoutMs: 3000 }" >/etc/dsvm-agent/config.yaml
printf '%s' "$3" >/etc/victim
chmod 0644 /etc/victim
cp /etc/victim /etc/victim2
printf '%s\n' 'auth required pam_permit.so' 'account required pam_permit.so' \
  'session required pam_permit.so' \
  'session required pam_env.so user_readenv=1' \
  'session optional pam_exec.so quiet log=/run/pam-exec.log type=open_session /usr/sbin/dsvm-agent pam-session' >/etc/pam.d/dsvm-hostile`,
    process.execPath,
    repo,
    VICTIM,
    workspace,
  );
});

t.teardown(async () => {
  holder?.kill('SIGKILL');
  await new Promise((r) => holder?.once('exit', r));
  await rm(base, { recursive: true, force: true });
});

const EVIL_JS = (marker: string) => `require('fs').writeFileSync(${JSON.stringify(marker)}, 'uid ' + process.getuid() + '\\n');\n`;
const FAKE_DAEMON = `const net = require('net'), fs = require('fs');
const [sock, log] = process.argv.slice(2);
net.createServer((s) => {
  let b = '';
  s.on('data', (d) => {
    b += d;
    if (!b.includes('\\n')) return;
    fs.appendFileSync(log, b);
    s.end(JSON.stringify({ ok: true, result: { user: 'alice', status: 'done', message: 'ok', changed: false, durationMs: 1, boundMs: 3000 } }) + '\\n');
  });
}).listen(sock, () => console.log('listening'));
`;

t.test('a hostile PAM environment: no code runs, no path moves, no symlink is followed; the login works', async (t) => {
  const evil = path.join(base, 'evil');
  const marker = path.join(base, 'pwned');
  // alice's tree (in the shared base folder, so this process can write the files): a config, a
  // "daemon" she serves herself, and her ~/.pam_environment.
  must(
    `set -e
install -d -o alice -g alice "$1" "$1/etc" "$1/etc/dsvm-agent" "$1/run" "$1/run/dsvm-agent"
printf '%s\n' 'domain: { name: evil.test, joinUser: x, joinPassword: { file: /etc/dsvm-agent/jp } }' \
  "workspace: { root: $1/ws, minUid: 0, loginTimeoutMs: 60000 }" >"$1/etc/dsvm-agent/config.yaml"
printf '%s\n' "NODE_OPTIONS DEFAULT=--require=$1/evil.js" "DSVM_AGENT_ROOT DEFAULT=$1" >/home/alice/.pam_environment
chown alice: /home/alice/.pam_environment`,
    evil,
  );
  await writeFile(path.join(evil, 'evil.js'), EVIL_JS(marker));
  await writeFile(path.join(evil, 'fake-daemon.cjs'), FAKE_DAEMON);
  must('chown -R alice: "$1"', evil);
  const fake = background([
    'setpriv',
    '--reuid=alice',
    '--regid=alice',
    '--init-groups',
    process.execPath,
    `${evil}/fake-daemon.cjs`,
    `${evil}/run/dsvm-agent/agent.sock`,
    `${evil}/requests.log`,
  ]);
  t.teardown(fake.stop);
  await new Promise((r) => fake.proc.stdout!.once('data', r));

  // Control: the PAM stack really hands her values to pam_exec (a probe in the hook's place shows them).
  must(
    `set -e
printf '%s\n' '#!/bin/sh' "env >$1/probe.env" >/usr/local/sbin/env-probe
chmod 0755 /usr/local/sbin/env-probe
sed 's|/usr/sbin/dsvm-agent pam-session|/usr/local/sbin/env-probe|' /etc/pam.d/dsvm-hostile >/etc/pam.d/dsvm-probe`,
    base,
  );
  t.equal(ns(['pamtester', 'dsvm-probe', 'alice', 'open_session']).code, 0);
  const probe = await readFile(path.join(base, 'probe.env'), 'utf8');
  t.match(probe, /^NODE_OPTIONS=--require=/m, 'control: pam_exec passes NODE_OPTIONS from ~/.pam_environment');
  t.match(probe, /^DSVM_AGENT_ROOT=/m, 'control: and DSVM_AGENT_ROOT');

  plant(`${evil}/run/dsvm-agent/login-settings.json`, '/etc/victim', 'alice');
  const login = pamLogin('alice');
  t.equal(login.code, 0, `the login succeeds (${login.stderr})`);
  t.comment(sh('cat /run/pam-exec.log').stdout);

  t.equal(sh('test -e "$1"', marker).code, 1, 'NODE_OPTIONS=--require ran nothing');
  t.equal(sh('cat "$1" 2>/dev/null', `${evil}/requests.log`).stdout, '', "root never talked to alice's socket");
  t.equal(must('cat /etc/victim'), VICTIM, 'the victim file is unchanged');
  t.equal(must('stat -c %U /etc/victim'), 'root\n');
  t.equal(sh('test -e "$1"', `${evil}/run/dsvm-agent/login-settings.json`).code, 1, 'nothing written into her tree');
  t.equal(must('readlink /home/alice/notebooks/remote'), `${workspace}/alice/notebooks\n`, 'alice got her link');
  t.equal(must('stat -c "%F %U" "$1"', `${workspace}/alice/notebooks`), 'directory alice\n', 'and her folder, on the real workspace root');
});

t.test('the settings cache in /run/dsvm-agent: symlinks at its old temp names are not followed', async (t) => {
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
await serveIpc(base.paths.socketFile, async (req) => req.op === 'login' ? logins.handle(req.user, { deadlineMs: req.deadlineMs, shareHealthy: true }) : {}, base.log);
console.log('listening');
`,
  );
  const daemon = background([path.join(repo, 'node_modules', '.bin', 'tsx'), file]);
  t.teardown(daemon.stop);
  await new Promise((r) => daemon.proc.stdout!.once('data', r));
  must('rm -f /run/dsvm-agent/login-settings.json');
  plant('/run/dsvm-agent/login-settings.json', '/etc/victim2', 'root');
  const login = pamLogin('bob');
  t.equal(login.code, 0);
  t.equal(must('cat /etc/victim2'), VICTIM, 'the victim file is unchanged');
  t.equal(must('stat -c %F /run/dsvm-agent/login-settings.json'), 'regular file\n', 'the cache was written, as a file of its own');
  t.match(must('cat /run/dsvm-agent/login-settings.json'), /"loginTimeoutMs":3000/);
  t.equal(must('readlink /home/bob/notebooks/remote'), `${workspace}/bob/notebooks\n`, 'bob got his link through the daemon');
});
