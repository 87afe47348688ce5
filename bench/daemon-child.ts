/**
 * The daemon under measurement, in its own process (bench/daemon.ts bundles
 * and forks it, so its RSS and CPU are the daemon's alone). Real health
 * server, control socket, check runner with real cron schedules (croner) and the
 * real command runner; the capabilities that would need a domain or a share
 * (testJoin, share probe, clock) answer from memory, and identity-lookup
 * runs the real `getent`.
 */
import { mkdtemp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { validateConfig } from '../src/agent/config.js';
import { createBase, createTaskContext } from '../src/agent/context.js';
import { Daemon } from '../src/app/daemon/daemon.js';
import { nullNotifier } from '../src/app/daemon/notify.js';
import type { ServiceManager } from '../src/agent/service-manager.js';
import { StateStore } from '../src/agent/state.js';
import { AzureChild } from '../src/agent/azure/child.js';
import { shareUsage } from '../src/tasks/share-mount/index.js';
import type { Capability } from '../src/agent/capability.js';
import { domainJoinCapability } from '../src/tasks/domain-join/capability.js';
import { host } from '../src/tasks/host/capability.js';
import { imdsGuard } from '../src/tasks/imds-guard/capability.js';
import { preflightCapability } from '../src/tasks/preflight/capability.js';
import { shareMountCapability } from '../src/tasks/share-mount/capability.js';
import type { TaskContext } from '../src/agent/task.js';

// The agent's capabilities with their outside doors answering from memory; first boot is done already.
const capabilities: Capability[] = [
  preflightCapability(async () => ({ offsetMs: 3, source: 'dc' })),
  domainJoinCapability({
    testJoin: async () => ({ ok: true, reason: 'joined' }),
    rejoin: async () => undefined,
    restartSssd: async () => undefined,
    removeDnsRecord: async () => undefined,
    leaveDomain: async () => undefined,
  }),
  imdsGuard,
  shareMountCapability({
    probeShare: async () => ({ mounted: true, responsive: true, reason: '' }),
    shareUsage: async () => ({ usedBytes: 1, quotaBytes: 100 }),
    remountShare: async () => undefined,
    closeHandlesAndUnmount: async () => undefined,
  }),
  host,
].map(({ firstBoot: _, ...rest }) => rest);
const services: ServiceManager = {
  kind: 'direct',
  isActive: async () => true,
  restart: async () => undefined,
  start: async () => undefined,
  stop: async () => undefined,
  enable: async () => undefined,
  disable: async () => undefined,
  daemonReload: async () => undefined,
};

const root = await mkdtemp(path.join(tmpdir(), 'dsvm-bench-'));
await mkdir(path.join(root, 'var'), { recursive: true });
const cfg = validateConfig(
  {
    azure: { imdsEndpoint: 'http://127.0.0.1:9' },
    domain: { name: 'contoso.test', joinUser: 'dsvm-join', joinPassword: { file: '/etc/dsvm-agent/join-password' }, allowGroups: ['root'] },
    share: { account: 'contosofiles', name: 'workspace', key: { file: '/etc/dsvm-agent/key' } },
    health: { listen: '127.0.0.1:0' },
    scheduledEvents: { enabled: false },
  },
  'bench',
);
const base = createBase({ root, logLevel: 'error' });
const { ctx, store } = await createTaskContext(base, cfg, { services });
ctx.state.firstBootCompletedAt = new Date().toISOString();
ctx.state.firstBootDurationMs = 1000;
await new StateStore(ctx.paths.stateFile, ctx.log).write(ctx.state);
await writeFile(path.join(root, 'ready'), '');
const daemon = await Daemon.start({ ctx, store, capabilities, notifier: nullNotifier });
await daemon.firstBootSettled;

const mem = () => {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  return { rssMb: m.rss / 2 ** 20, heapMb: m.heapUsed / 2 ** 20 };
};
process.on('message', (msg: { op: string; n?: number; ms?: number }) => {
  void (async () => {
    if (msg.op === 'mem') return process.send?.({ ...mem() });
    if (msg.op === 'cycles') {
      const t0 = performance.now();
      for (let i = 0; i < (msg.n ?? 0); i++) await daemon.runner.runAll();
      return process.send?.({ ...mem(), ms: performance.now() - t0 });
    }
    if (msg.op === 'cpu') {
      const c0 = process.cpuUsage();
      await new Promise((r) => setTimeout(r, msg.ms));
      const c = process.cpuUsage(c0);
      return process.send?.({ cpuSec: (c.user + c.system) / 1e6 });
    }
    if (msg.op === 'azure') return process.send?.(await azureCost());
    if (msg.op === 'stop') {
      await daemon.stop();
      process.exit(0);
    }
  })();
});
/** CPU seconds of this process's finished children (/proc/self/stat cutime + cstime). */
async function childrenCpuSec(): Promise<number> {
  const fields = (await readFile('/proc/self/stat', 'utf8')).split(') ')[1]!.split(' ');
  return (Number(fields[13]) + Number(fields[14])) / 100;
}

/**
 * One share usage call (the share-quota check) against the loopback Files
 * fake (BENCH_FILES_URL), first as the daemon makes it (in an Azure child),
 * then in-process as a baseline: what each leaves resident in the daemon.
 */
async function azureCost(): Promise<Record<string, number | string>> {
  const files = process.env.BENCH_FILES_URL;
  const entry = process.env.BENCH_AGENT_ENTRY;
  if (!files || !entry) return { skipped: 'no BENCH_FILES_URL / BENCH_AGENT_ENTRY' };
  const keyFile = path.join(root, 'etc/dsvm-agent/key');
  await mkdir(path.dirname(keyFile), { recursive: true });
  await writeFile(keyFile, process.env.BENCH_STORAGE_KEY ?? '', { mode: 0o600 });
  const share = { ...cfg.share!, filesEndpoint: `${files}/contosofiles` };
  const shareCfg = { ...cfg, share } as typeof cfg;
  const child = new AzureChild({
    command: [process.execPath, ...process.execArgv.filter((a) => a !== '--expose-gc'), entry],
    cfg: shareCfg,
    root,
    logLevel: 'error',
    run: base.run,
    log: base.log,
    redactor: base.redactor,
    env: { NODE_EXTRA_CA_CERTS: process.env.BENCH_CA_FILE ?? '', MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? '' },
  });
  const viaChild: TaskContext = { ...ctx, cfg: shareCfg, azureChild: child };
  const runs = 3;
  const before = mem().rssMb;
  const cpu0 = await childrenCpuSec();
  const t0 = performance.now();
  for (let i = 0; i < runs; i++) await shareUsage(viaChild);
  const wallMs = (performance.now() - t0) / runs;
  const childCpuSec = ((await childrenCpuSec()) - cpu0) / runs;
  const afterChild = mem().rssMb;
  // ctx itself has no azureChild: the SDK loads into this process. node:https only now, not at start-up.
  const { Agent } = await import('node:https');
  const agent = new Agent({ ca: await readFile(process.env.BENCH_CA_FILE!, 'utf8') });
  const c0 = process.cpuUsage();
  const t1 = performance.now();
  await shareUsage({ ...ctx, cfg: shareCfg }, { agent });
  const inProcessMs = performance.now() - t1;
  const c = process.cpuUsage(c0);
  const afterInProcess = mem().rssMb;
  return {
    rssBeforeMb: before,
    rssAfterChildCallsMb: afterChild,
    rssAfterInProcessCallMb: afterInProcess,
    childCallMs: wallMs,
    childCallCpuSec: childCpuSec,
    inProcessCallMs: inProcessMs,
    inProcessCallCpuSec: (c.user + c.system) / 1e6,
  };
}

process.send?.({ url: daemon.healthUrl, ...mem() });
