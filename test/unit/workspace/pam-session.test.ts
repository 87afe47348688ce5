import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { serveIpc } from '../../../src/agent/ipc.js';
import { makePaths } from '../../../src/agent/paths.js';
import { cachedBound } from '../../../src/tasks/workspace/request.js';

/** The real entry point, as pam_exec starts it (needs `make build`, which `make test` runs first). */
// The shipped entry, as /usr/sbin/dsvm-agent runs it: the hook in one CommonJS file.
const cli = fileURLToPath(new URL('../../../dist/dsvm-agent.cjs', import.meta.url));

function runHook(
  env: Record<string, string>,
  args: string[] = ['pam-session'],
): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [cli, ...args], { env: { PATH: '/usr/bin:/bin', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr, ms: Date.now() - t0 }));
  });
}

const goodConfig =
  'domain: { name: contoso.test, joinUser: j, joinPassword: { file: /etc/dsvm-agent/jp } }\nworkspace: { loginTimeoutMs: 400 }\n';

async function root(config: string | undefined): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'dsvm-pam-'));
  await mkdir(path.join(dir, 'etc', 'dsvm-agent'), { recursive: true });
  if (config !== undefined) await writeFile(path.join(dir, 'etc', 'dsvm-agent', 'config.yaml'), config);
  return dir;
}

const cases: { name: string; config?: string; env: Record<string, string>; stderr?: RegExp }[] = [
  { name: 'close_session: nothing to do', config: goodConfig, env: { PAM_TYPE: 'close_session', PAM_USER: 'alice' } },
  { name: 'auth stack: nothing to do', config: goodConfig, env: { PAM_TYPE: 'auth', PAM_USER: 'alice' } },
  { name: 'no PAM_USER', config: goodConfig, env: { PAM_TYPE: 'open_session' }, stderr: /PAM_USER is not set/ },
  { name: 'config missing', env: { PAM_TYPE: 'open_session', PAM_USER: 'alice' }, stderr: /does not exist|within the bound/ },
  { name: 'config invalid', config: 'domain: [', env: { PAM_TYPE: 'open_session', PAM_USER: 'alice' }, stderr: /YAML|problem/ },
  {
    name: 'config with a bad value',
    config: 'domain: { name: x }\n',
    env: { PAM_TYPE: 'open_session', PAM_USER: 'alice' },
    stderr: /domain|within the bound/,
  },
  {
    name: 'hostile user name',
    config: goodConfig,
    env: { PAM_TYPE: 'open_session', PAM_USER: '../../etc\nroot' },
    stderr: /control character/,
  },
];

t.test(
  'pam-session always exits 0 and never writes to stdout',
  { skip: !existsSync(cli) && 'dist/dsvm-agent.cjs missing: run make build' },
  async (t) => {
    for (const c of cases) {
      const dir = await root(c.config);
      const r = await runHook(c.env, ['--root', dir, 'pam-session']);
      t.equal(r.code, 0, `${c.name}: exit 0`);
      t.equal(r.stdout, '', `${c.name}: nothing on stdout`);
      if (c.stderr) t.match(r.stderr, c.stderr, `${c.name}: says why on stderr`);
    }
  },
);

t.test(
  'a daemon that never answers: the hook returns within loginTimeoutMs',
  { skip: !existsSync(cli) && 'dist/dsvm-agent.cjs missing' },
  async (t) => {
    const dir = await root(goodConfig);
    const paths = makePaths(dir);
    let calls = 0;
    // The first answer carries the daemon's bound (400 ms), which the hook caches; then the daemon hangs.
    const server = await serveIpc(
      paths.socketFile,
      () =>
        calls++ === 0
          ? Promise.resolve({ user: 'alice', status: 'done', message: 'ok', changed: false, durationMs: 1, boundMs: 400 })
          : new Promise(() => undefined),
      { warn: () => undefined, debug: () => undefined },
    );
    t.teardown(() => server.close());
    const first = await runHook({ PAM_TYPE: 'open_session', PAM_USER: 'alice' }, ['--root', dir, 'pam-session']);
    t.same([first.code, first.stdout, first.stderr], [0, '', ''], 'answered: exit 0, silent');
    if (process.getuid!() === 0) {
      t.match(
        JSON.parse(await readFile(paths.loginSettingsFile, 'utf8')),
        { loginTimeoutMs: 400 },
        "root's hook cached the daemon's bound",
      );
    } else {
      // Only root's hook writes the cache (it lives in a root-only directory on a VM): write what root's would have.
      t.notOk(existsSync(paths.loginSettingsFile), 'not root: the hook wrote no cache');
      const { key } = await cachedBound(paths, paths.configFile);
      await writeFile(paths.loginSettingsFile, JSON.stringify({ key, loginTimeoutMs: 400 }));
      t.same(await cachedBound(paths, paths.configFile), { key, timeoutMs: 400 }, 'the cache as root would have written it');
    }
    for (const run of ['hung daemon', 'hung daemon again']) {
      // This machine's cost of starting Node at all, measured now: the bound counts from process start.
      const t0 = Date.now();
      await new Promise((r) => spawn(process.execPath, ['-e', '0']).on('close', r));
      const nodeStart = Date.now() - t0;
      const r = await runHook({ PAM_TYPE: 'open_session', PAM_USER: 'alice' }, ['--root', dir, 'pam-session']);
      t.equal(r.code, 0, `${run}: exit 0`);
      t.equal(r.stdout, '');
      t.match(r.stderr, /still working on it/);
      // The bound counts from the hook's own start; spawning it is the caller's cost (pam_exec's fork+exec).
      t.ok(r.ms < 400 + 2 * nodeStart + 300, `${run}: returned in ${r.ms} ms (bound 400, node start-up ${nodeStart} ms)`);
    }
    const login = await runHook({}, ['--root', dir, 'login', '--user', 'alice', '--json']);
    if (process.getuid!() === 0) {
      t.equal(login.code, 3, 'login: 3 = not finished yet, retry');
      t.match(JSON.parse(login.stdout), { via: 'daemon', status: 'pending' });
    } else {
      t.equal(login.code, 2, 'login needs root');
    }
  },
);
