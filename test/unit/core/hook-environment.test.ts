// The login hook runs as root with the environment pam_exec hands it, which
// a user can fill (pam_env user_readenv). Nothing in it may move the agent's
// paths or change the code root runs: DSVM_AGENT_ROOT is not read by the
// shipped entry or the CLI, and /usr/sbin/dsvm-agent (packaging/deb/dsvm-agent)
// starts Node with only the PAM items it needs, so NODE_OPTIONS=--require
// runs nothing. The lab test test/lab/hostile-env.test.ts does the same
// through the real PAM stack.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { serveIpc } from '../../../src/agent/ipc.js';
import { makePaths } from '../../../src/agent/paths.js';

const repo = fileURLToPath(new URL('../../..', import.meta.url));
const entry = path.join(repo, 'dist', 'dsvm-agent.cjs');
const noBuild = !existsSync(entry) && 'dist/dsvm-agent.cjs missing: run make build';
const CONFIG = 'domain: { name: evil.test, joinUser: j, joinPassword: { file: /etc/dsvm-agent/jp } }\n';

function run(file: string, args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A tree a user wrote: a config and a "daemon" socket that records every request it gets. */
async function hostileRoot(t: Test): Promise<{ dir: string; requests: unknown[] }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'dsvm-evil-'));
  const paths = makePaths(dir);
  await mkdir(paths.configDir, { recursive: true });
  await writeFile(paths.configFile, CONFIG);
  const requests: unknown[] = [];
  const server = await serveIpc(
    paths.socketFile,
    async (req) => {
      requests.push(req);
      return { user: 'alice', status: 'done', message: 'ok', changed: false, durationMs: 1, boundMs: 400 };
    },
    { warn: () => undefined, debug: () => undefined },
  );
  t.teardown(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { dir, requests };
}

const PAM = { PATH: '/usr/bin:/bin', PAM_TYPE: 'open_session', PAM_USER: 'alice', PAM_SERVICE: 'sshd' };

t.test('DSVM_AGENT_ROOT in the environment moves nothing', { skip: noBuild }, async (t) => {
  const evil = await hostileRoot(t);
  const hook = await run(process.execPath, [entry, 'pam-session'], { ...PAM, DSVM_AGENT_ROOT: evil.dir });
  t.equal(hook.code, 0, 'the hook exits 0');
  t.same(evil.requests, [], "pam-session never talked to the user's socket");
  const check = await run(process.execPath, [entry, 'config', 'check'], { PATH: PAM.PATH, DSVM_AGENT_ROOT: evil.dir });
  t.notMatch(check.stdout, /valid/, `config check did not read the user's config (${check.stdout}${check.stderr})`);
  t.match(check.stdout + check.stderr, /\/etc\/dsvm-agent\/config\.yaml/, 'it looked at the real path');

  // --root (argv, which pam_exec takes from the PAM config an admin wrote) still points tests at a tree.
  const good = await hostileRoot(t);
  const viaArgv = await run(process.execPath, [entry, '--root', good.dir, 'pam-session'], { ...PAM, DSVM_AGENT_ROOT: evil.dir });
  t.equal(viaArgv.code, 0);
  t.match(good.requests, [{ op: 'login', user: 'alice' }], '--root DIR pam-session asks the daemon under DIR');
  t.same(evil.requests, [], 'and the environment still moved nothing');
});

/** packaging/deb/dsvm-agent with its two fixed paths pointing at this checkout and this machine's node. */
async function wrapper(dir: string, entryFile: string): Promise<string> {
  const text = (await readFile(path.join(repo, 'packaging', 'deb', 'dsvm-agent'), 'utf8'))
    .replaceAll('/usr/lib/dsvm-agent/node', process.execPath)
    .replaceAll('/usr/lib/dsvm-agent/dist/dsvm-agent.cjs', entryFile);
  const file = path.join(dir, 'dsvm-agent');
  await writeFile(file, text);
  await chmod(file, 0o755);
  return file;
}

t.test('/usr/sbin/dsvm-agent: NODE_OPTIONS=--require runs nothing', { skip: noBuild }, async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'dsvm-wrapper-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const marker = path.join(dir, 'pwned');
  const evil = path.join(dir, 'evil.js');
  await writeFile(evil, `require('fs').appendFileSync(${JSON.stringify(marker)}, process.argv.slice(2).join(' ') + '\\n');\n`);
  const hostile = { NODE_OPTIONS: `--require ${evil}`, DSVM_AGENT_ROOT: dir, LD_BIND_NOW: '1' };
  // The payload works: plain node with this environment runs it.
  await run(process.execPath, ['-e', '0'], { PATH: PAM.PATH, ...hostile });
  t.ok(existsSync(marker), 'control: node itself honours NODE_OPTIONS');
  await rm(marker);

  const agent = await wrapper(dir, entry);
  const hook = await run(agent, ['pam-session'], { ...PAM, ...hostile });
  t.equal(hook.code, 0, `pam-session exits 0 (${hook.stderr})`);
  const version = await run(agent, ['version'], { PATH: PAM.PATH, ...hostile });
  t.match(version.stdout, /^dsvm-agent /, 'other commands run');
  t.notOk(existsSync(marker), 'the --require payload never ran');
});

t.test("/usr/sbin/dsvm-agent: the hook's Node sees the PAM items and a fixed PATH, nothing else", async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'dsvm-wrapper-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const dump = path.join(dir, 'dump-env.cjs');
  await writeFile(dump, 'process.stdout.write(JSON.stringify({ env: process.env, argv: process.argv.slice(2) }));\n');
  const agent = await wrapper(dir, dump);
  const r = await run(agent, ['pam-session'], {
    ...PAM,
    PATH: `${dir}:/usr/bin:/bin`,
    PAM_RHOST: '10.0.0.1',
    NODE_OPTIONS: '--max-old-space-size=1',
    LANG: 'C.UTF-8',
    DSVM_AGENT_ROOT: dir,
  });
  const seen = JSON.parse(r.stdout) as { env: Record<string, string>; argv: string[] };
  t.same(
    seen.env,
    { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', PAM_USER: 'alice', PAM_TYPE: 'open_session', PAM_SERVICE: 'sshd' },
    'only the PAM items and a fixed PATH',
  );
  t.same(seen.argv, ['pam-session']);
  const other = await run(agent, ['status', '--json'], {
    PATH: '/usr/bin:/bin',
    NODE_OPTIONS: '--max-old-space-size=1',
    HTTPS_PROXY: 'http://proxy:3128',
  });
  const otherSeen = JSON.parse(other.stdout) as { env: Record<string, string>; argv: string[] };
  t.equal(otherSeen.env.NODE_OPTIONS, undefined, 'other commands: NODE_OPTIONS dropped');
  t.equal(otherSeen.env.HTTPS_PROXY, 'http://proxy:3128', 'other commands: root’s own environment kept (proxy for Azure)');
  t.same(otherSeen.argv, ['status', '--json']);
});
