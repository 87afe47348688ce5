/**
 * Runs inside the network and mount namespaces azure-proxy.test.ts made
 * (`unshare --net --mount`): only a loopback interface, and an /etc/hosts of
 * its own, so tinyproxy (which resolves names with the system resolver)
 * finds the Key Vault fake's name, dsvm.vault.localhost. Starts the Azure
 * fakes and a real forward proxy (Debian's tinyproxy, its own config and
 * log), runs azure-proxy-driver.ts once per round with that round's
 * environment and config, and prints one JSON line: per round, the driver's
 * results, the proxy's request lines and the requests each fake saw.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startFakes } from '../fakes/index.js';
import { contosoPoolSeed } from '../helpers/azure-agent.js';
import type { ProxyDriverResult, ProxyDriverSetup } from './azure-proxy-driver.js';

export const SUBSCRIPTION = 'b8635b18-1560-4250-926e-6ff110446a18';
const KEY = 'ProxyStorageKey+ab/CdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH==';
export const PROXY_PORT = 3128;

/** One run of the driver: the unit's environment and azure.proxy. */
export interface ProxyRound {
  name: string;
  env: Record<string, string>;
  proxy?: string;
}

export interface ProxyRoundResult {
  name: string;
  driver: ProxyDriverResult;
  /** tinyproxy's "Request" lines of this round: `CONNECT host:port HTTP/1.1` or `GET http://... HTTP/1.1`. */
  proxied: string[];
  /** Requests each fake answered in this round, by fake. */
  seen: Record<string, number>;
}

export interface ProxyScenario {
  urls: { imds: string; keyVault: string; arm: string; files: string; vault: string };
  rounds: ProxyRoundResult[];
}

const HERE = path.dirname(new URL(import.meta.url).pathname);
const ROOT = path.resolve(HERE, '../..');

async function main(): Promise<void> {
  const rounds = JSON.parse(process.env.PROXY_ROUNDS ?? '[]') as ProxyRound[];
  const dir = await mkdtemp(path.join(tmpdir(), 'dsvm-proxy-'));
  try {
    await inNamespace(dir, rounds);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function inNamespace(dir: string, rounds: ProxyRound[]): Promise<void> {
  execFileSync('ip', ['link', 'set', 'lo', 'up']);
  await mkdir(path.join(dir, 'share'));
  // The mount namespace is private (unshare --propagation private): the host's /etc/hosts is untouched.
  await writeFile(path.join(dir, 'hosts'), '127.0.0.1 localhost dsvm.vault.localhost\n');
  execFileSync('mount', ['--bind', path.join(dir, 'hosts'), '/etc/hosts']);

  const fakes = await startFakes({
    host: '127.0.0.1',
    filesRoots: { contosofiles: path.join(dir, 'share') },
    seed: {
      secrets: { 'dsvm-join': 'Join-P@ss-proxy-0123456789' },
      ...contosoPoolSeed(SUBSCRIPTION, KEY),
    },
  });
  const log = path.join(dir, 'tinyproxy.log');
  // No ConnectPort line: CONNECT to any port (the fakes' ports are random). No User: it stays root, in this namespace only.
  await writeFile(
    path.join(dir, 'tinyproxy.conf'),
    [
      `Port ${PROXY_PORT}`,
      'Listen 127.0.0.1',
      'Timeout 30',
      `LogFile "${log}"`,
      'LogLevel Info',
      'MaxClients 50',
      'Allow 127.0.0.1',
      '',
    ].join('\n'),
  );
  const proxy = spawn('tinyproxy', ['-d', '-c', path.join(dir, 'tinyproxy.conf')], { stdio: 'ignore' });
  let out: ProxyScenario | undefined;
  try {
    await listening(log);
    const vault = fakes.vaultUrl('dsvm');
    const results: ProxyRoundResult[] = [];
    for (const round of rounds) {
      fakes.reset();
      const from = (await readFile(log, 'utf8')).length;
      const setup: ProxyDriverSetup = {
        imds: fakes.urls.imds,
        arm: fakes.urls.arm,
        files: fakes.urls.files,
        vaultUrl: vault,
        subscriptionId: SUBSCRIPTION,
        storageKey: KEY,
        ...(round.proxy === undefined ? {} : { proxy: round.proxy }),
      };
      // {arm}, {files}, {imds}: the fakes' host:port, known only now (their ports are random).
      const ports: Record<string, string> = {
        arm: new URL(fakes.urls.arm).host,
        files: new URL(fakes.urls.files).host,
        imds: new URL(fakes.urls.imds).host,
      };
      const env = Object.fromEntries(
        Object.entries(round.env).map(([k, v]) => [k, v.replace(/\{(\w+)\}/g, (m, name: string) => ports[name] ?? m)]),
      );
      const driver = await runDriver({ ...env, NODE_EXTRA_CA_CERTS: fakes.caFile, PROXY_SETUP: JSON.stringify(setup) });
      await sleep(200); // tinyproxy writes its lines as it goes; let the last close be logged
      const proxied = (await readFile(log, 'utf8'))
        .slice(from)
        .split('\n')
        .map((l) => /Request \(file descriptor \d+\): (.*)$/.exec(l)?.[1])
        .filter((l): l is string => l !== undefined);
      const seen = Object.fromEntries(Object.entries(fakes.requests).map(([k, v]) => [k, v.length]));
      results.push({ name: round.name, driver, proxied, seen });
    }
    out = { urls: { ...fakes.urls, vault }, rounds: results };
  } finally {
    // Waited for: a tinyproxy left running would keep this namespace (and its log file) alive.
    const gone = new Promise((r) => proxy.once('exit', r));
    proxy.kill('SIGTERM');
    await Promise.race([gone, sleep(5000).then(() => proxy.kill('SIGKILL'))]);
    await fakes.close();
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

async function listening(log: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const text = await readFile(log, 'utf8').catch(() => '');
    if (text.includes('Accepting connections')) return;
    await sleep(50);
  }
  throw new Error('tinyproxy did not start listening within 5 s');
}

function runDriver(env: Record<string, string>): Promise<ProxyDriverResult> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', path.join(HERE, 'azure-proxy-driver.ts')], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d) => (stdout += d));
  child.stderr?.on('data', (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', () => {
      try {
        resolve(JSON.parse(stdout.trim().split('\n').pop() ?? '') as ProxyDriverResult);
      } catch {
        reject(new Error(`the driver printed no result: ${stdout} ${stderr}`));
      }
    });
  });
}

await main();
// The fakes' and the SDKs' sockets are closed; nothing else should hold the process, but the namespace must end now.
process.exit(0);
