// /usr/sbin/dsvm-agent (packaging/deb/dsvm-agent) starts the hook's Node
// from an empty environment for every argv src/entry.ts runs as the hook,
// not only for the bare `pam-session`: tests and bench/login.ts use
// `--root DIR pam-session`, so they go through the same line as a login.
// Every other argv keeps root's environment (minus NODE_OPTIONS).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../../..', import.meta.url));
const HOOK_ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', PAM_USER: 'alice', PAM_TYPE: 'open_session', PAM_SERVICE: 'sshd' };

const cases: { name: string; argv: string[]; emptyEnv: boolean }[] = [
  { name: 'pam-session', argv: ['pam-session'], emptyEnv: true },
  { name: '--root DIR pam-session', argv: ['--root', '/tmp/tree', 'pam-session'], emptyEnv: true },
  { name: '--root=DIR pam-session', argv: ['--root=/tmp/tree', 'pam-session'], emptyEnv: true },
  // entry.ts does not take these as the hook: they stay other commands.
  { name: '--root= pam-session (no DIR)', argv: ['--root=', 'pam-session'], emptyEnv: false },
  { name: 'pam-session with an extra word', argv: ['pam-session', 'x'], emptyEnv: false },
  { name: '--root DIR login', argv: ['--root', '/tmp/tree', 'login'], emptyEnv: false },
  { name: 'login --user pam-session', argv: ['login', '--user', 'pam-session'], emptyEnv: false },
  { name: 'status', argv: ['status'], emptyEnv: false },
];

t.test('the launcher: which argv starts Node from an empty environment', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'dsvm-launcher-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const dump = path.join(dir, 'dump-env.cjs');
  await writeFile(dump, 'process.stdout.write(JSON.stringify({ env: process.env, argv: process.argv.slice(2) }));\n');
  const agent = path.join(dir, 'dsvm-agent');
  const launcher = await readFile(path.join(repo, 'packaging', 'deb', 'dsvm-agent'), 'utf8');
  await writeFile(
    agent,
    launcher.replaceAll('/usr/lib/dsvm-agent/node', process.execPath).replaceAll('/usr/lib/dsvm-agent/dist/dsvm-agent.cjs', dump),
  );
  await chmod(agent, 0o755);
  for (const c of cases) {
    const r = spawnSync(agent, c.argv, {
      env: { ...HOOK_ENV, PATH: '/usr/bin:/bin', NODE_OPTIONS: '--max-old-space-size=64', HTTPS_PROXY: 'http://proxy:3128' },
      encoding: 'utf8',
    });
    t.equal(r.status, 0, `${c.name}: runs (${r.stderr})`);
    const seen = JSON.parse(r.stdout) as { env: Record<string, string>; argv: string[] };
    t.same(seen.argv, c.argv, `${c.name}: argv passed as given`);
    t.equal(seen.env.NODE_OPTIONS, undefined, `${c.name}: NODE_OPTIONS never reaches Node`);
    if (c.emptyEnv) t.same(seen.env, HOOK_ENV, `${c.name}: only the PAM items and a fixed PATH`);
    else t.equal(seen.env.HTTPS_PROXY, 'http://proxy:3128', `${c.name}: root's own environment kept`);
  }
});
