/**
 * The login hook's cost, against baselines measured in the same run,
 * interleaved round by round so machine noise hits all of them alike:
 *
 * - `node -e 0`: what any Node program costs to start (the target is the
 *   hook's p50 at most 1.3 x this);
 * - a two-line `sh` script doing `mkdir -p` + `ln -s` (what admins use today);
 * - `dsvm-agent pam-session` on the fast path (everything in place), with a
 *   daemon answering on the control socket: the production path;
 * - the same with no daemon (the hook does the work itself, in children);
 * - the hook on close_session, which does nothing: its start-up floor.
 *
 * Each run is a cold process, started as pam_exec starts it (env PAM_TYPE,
 * PAM_USER), through an executable shaped like the package's
 * /usr/sbin/dsvm-agent (a `#!node` script requiring dist/dsvm-agent.cjs). The system is a temp root prefix with local workspaces and the
 * account `nobody` (so it needs root, like the hook itself).
 *
 * Run: npx tsx bench/login.ts [--runs N] [--json]   (needs `make build`)
 */
import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../src/agent/config.js';
import { createBase } from '../src/agent/context.js';
import { serveIpc } from '../src/agent/ipc.js';
import { makePaths } from '../src/agent/paths.js';
import { handleLogin } from '../src/tasks/workspace/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
// BENCH_LOGIN_CLI compares another build of the entry point (a CommonJS file like dist/dsvm-agent.cjs).
const cli = process.env.BENCH_LOGIN_CLI ?? path.join(here, '..', 'dist', 'dsvm-agent.cjs');
const argv = process.argv.slice(2);
const RUNS = Number(argv[argv.indexOf('--runs') + 1] ?? 0) || Number(process.env.BENCH_LOGIN_RUNS ?? 60);
const JSON_OUT = argv.includes('--json');

function timeRun(file: string, args: string[], env: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(file, args, { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`${file} ${args.join(' ')} exited ${code}: ${err}`));
      else resolve(Number(process.hrtime.bigint() - t0) / 1e6);
    });
  });
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

async function main(): Promise<void> {
  const dbg = (m: string): void => void (process.env.BENCH_DEBUG && console.error(`[bench] ${m}`));
  if (process.getuid?.() !== 0) throw new Error('bench/login.ts needs root (the hook acts as root and switches to the user)');
  const root = await mkdtemp(path.join(tmpdir(), 'dsvm-bench-login-'));
  await chmod(root, 0o755);
  const paths = makePaths(root);
  await mkdir(paths.configDir, { recursive: true });
  await writeFile(
    paths.configFile,
    'domain: { name: contoso.test, joinUser: j, joinPassword: { file: /etc/dsvm-agent/jp } }\nworkspace: { minUid: 1, loginTimeoutMs: 3000 }\n',
  );
  // `nobody`'s home (/nonexistent) under the prefix, owned by nobody, as a real home would be.
  const home = paths.under('/nonexistent');
  await mkdir(home, { recursive: true });
  await chmod(home, 0o755);
  const { spawnSync } = await import('node:child_process');
  spawnSync('chown', ['nobody:nogroup', home]);
  await mkdir(paths.under('/data/workspace'), { recursive: true });

  const cfg = await loadConfig(paths.configFile);
  const base = createBase({ root, logLevel: 'error' }, { paths });
  const deps = { cfg, paths, run: base.run, log: base.log };
  const server = await serveIpc(
    paths.socketFile,
    async (req) =>
      req.op === 'login' ? handleLogin(deps, req.user, { deadlineMs: req.deadlineMs, shareHealthy: undefined }) : { ok: true },
    base.log,
  );

  // The package's /usr/sbin/dsvm-agent, with this machine's node as the interpreter.
  const agent = path.join(root, 'dsvm-agent');
  await writeFile(agent, `#!${process.execPath}\nrequire(${JSON.stringify(cli)});\n`, { mode: 0o755 });
  const hookEnv = { PAM_TYPE: 'open_session', PAM_USER: 'nobody', PAM_SERVICE: 'sshd', DSVM_AGENT_ROOT: root };
  const sh = path.join(root, 'hook.sh');
  const shDir = path.join(root, 'sh');
  await writeFile(
    sh,
    `mkdir -p "${shDir}/data/workspace/nobody/notebooks" "${shDir}/home/notebooks"\nln -sfn "${shDir}/data/workspace/nobody/notebooks" "${shDir}/home/notebooks/remote"\n`,
  );
  const noDaemonRoot = await mkdtemp(path.join(tmpdir(), 'dsvm-bench-login-nd-'));

  dbg('daemon up');
  // Prime: the first login creates everything (and caches the bound); every measured run is the fast path.
  await timeRun(agent, ['pam-session'], hookEnv);
  const variants: { name: string; run: () => Promise<number> }[] = [
    { name: 'node -e 0', run: () => timeRun(process.execPath, ['-e', '0'], {}) },
    { name: 'sh: mkdir -p + ln -s', run: () => timeRun('/bin/sh', [sh], {}) },
    { name: 'pam-session (daemon)', run: () => timeRun(agent, ['pam-session'], hookEnv) },
    // The floor of the hook: the same process with nothing to do (what start-up and the entry cost).
    { name: 'pam-session close_session', run: () => timeRun(agent, ['pam-session'], { ...hookEnv, PAM_TYPE: 'close_session' }) },
  ];
  // The no-daemon path: same tree without a socket.
  await rm(noDaemonRoot, { recursive: true });
  spawnSync('cp', ['-a', root, noDaemonRoot]);
  await rm(makePaths(noDaemonRoot).socketFile, { force: true });
  const ndEnv = { ...hookEnv, DSVM_AGENT_ROOT: noDaemonRoot };
  await timeRun(agent, ['pam-session'], ndEnv);
  variants.push({ name: 'pam-session (no daemon)', run: () => timeRun(agent, ['pam-session'], ndEnv) });

  dbg('primed');
  const samples = new Map<string, number[]>(variants.map((v) => [v.name, []]));
  for (let i = 0; i < 3; i++) for (const v of variants) await v.run(); // warm the page cache
  for (let i = 0; i < RUNS; i++) for (const v of variants) samples.get(v.name)!.push(await v.run());
  await server.close();
  await rm(root, { recursive: true, force: true });
  await rm(noDaemonRoot, { recursive: true, force: true });

  const node50 = pct(samples.get('node -e 0')!, 50);
  const node95 = pct(samples.get('node -e 0')!, 95);
  const sh50 = pct(samples.get('sh: mkdir -p + ln -s')!, 50);
  const rows = variants.map((v) => {
    const xs = samples.get(v.name)!;
    const p50 = pct(xs, 50);
    const p95 = pct(xs, 95);
    return {
      name: v.name,
      runs: xs.length,
      p50Ms: +p50.toFixed(1),
      p95Ms: +p95.toFixed(1),
      p50VsNode: +(p50 / node50).toFixed(2),
      p95VsNode: +(p95 / node95).toFixed(2),
      p50VsSh: +(p50 / sh50).toFixed(1),
    };
  });
  const hook = rows.find((r) => r.name === 'pam-session (daemon)')!;
  const verdict = { target: 'pam-session (daemon) p50 <= 1.3 x node -e 0', ratio: hook.p50VsNode, met: hook.p50VsNode <= 1.3 };
  if (JSON_OUT) {
    process.stdout.write(`${JSON.stringify({ bench: 'login', rows, verdict }, null, 2)}\n`);
    return;
  }
  console.log(`login hook, ${RUNS} cold runs each, interleaved (ms; ratios against node -e 0 and the sh script of the same run)`);
  console.log(
    `${'variant'.padEnd(26)}${'p50'.padStart(8)}${'p95'.padStart(8)}${'p50/node'.padStart(10)}${'p95/node'.padStart(10)}${'p50/sh'.padStart(9)}`,
  );
  for (const r of rows) {
    console.log(
      `${r.name.padEnd(26)}${r.p50Ms.toFixed(1).padStart(8)}${r.p95Ms.toFixed(1).padStart(8)}${r.p50VsNode.toFixed(2).padStart(10)}${r.p95VsNode.toFixed(2).padStart(10)}${r.p50VsSh.toFixed(1).padStart(9)}`,
    );
  }
  console.log(`target: ${verdict.target}: ${verdict.ratio.toFixed(2)} ${verdict.met ? 'MET' : 'NOT MET'}`);
}

main().catch((err: unknown) => {
  console.error(`bench/login.ts: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
