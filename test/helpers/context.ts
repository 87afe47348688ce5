import { mkdtemp, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { validateConfig } from '../../src/agent/config.js';
import type { Config } from '../../src/agent/config-schema.js';
import { ImdsClient } from '../../src/agent/azure/imds.js';
import { createLogger, type Logger } from '../../src/agent/log.js';
import { makePaths, type Paths } from '../../src/agent/paths.js';
import { Redactor } from '../../src/agent/redact.js';
import { readSecret, SecretCache } from '../../src/agent/secrets.js';
import type { ServiceManager } from '../../src/agent/service-manager.js';
import { emptyState } from '../../src/agent/state.js';
import type { TaskContext } from '../../src/agent/task.js';
import { FakeRunner, type FakeCommand } from './fake-runner.js';

/** A minimal valid config; tests override what they need. IMDS points at a closed loopback port. */
export function testConfig(overrides: Record<string, unknown> = {}): Config {
  const base: Record<string, unknown> = {
    azure: { imdsEndpoint: 'http://127.0.0.1:9', managementEndpoint: 'https://127.0.0.1:9' },
    domain: { name: 'contoso.test', joinUser: 'dsvm-join', joinPassword: { file: '/etc/dsvm-agent/join-password' } },
  };
  return validateConfig(deepMerge(base, overrides), 'test');
}

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && cur && typeof cur === 'object' && !Array.isArray(cur)
        ? deepMerge(cur as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

/** A service manager that records what it was asked. */
export class FakeServices implements ServiceManager {
  readonly kind: ServiceManager['kind'] = 'direct';
  readonly actions: string[] = [];
  readonly active = new Set<string>();
  async isActive(unit: string) {
    return this.active.has(unit);
  }
  async restart(unit: string) {
    this.actions.push(`restart ${unit}`);
    this.active.add(unit);
  }
  async start(unit: string) {
    this.actions.push(`start ${unit}`);
    this.active.add(unit);
  }
  async stop(unit: string) {
    this.actions.push(`stop ${unit}`);
    this.active.delete(unit);
  }
  async enable(unit: string) {
    this.actions.push(`enable ${unit}`);
  }
  async disable(unit: string) {
    this.actions.push(`disable ${unit}`);
  }
  async daemonReload() {
    this.actions.push('daemon-reload');
  }
}

export interface TestContext {
  ctx: TaskContext;
  root: string;
  paths: Paths;
  runner: FakeRunner;
  services: FakeServices;
  /** Every log line written, for "no secret in logs" assertions. */
  logLines: string[];
  log: Logger;
}

/** A temp root with a TaskContext whose doors are fakes; nothing outside the temp dir is touched. */
export async function makeTestContext(
  opts: { config?: Record<string, unknown>; commands?: FakeCommand[]; root?: string } = {},
): Promise<TestContext> {
  const root = opts.root ?? (await mkdtemp(path.join(tmpdir(), 'dsvm-agent-test-')));
  const paths = makePaths(root);
  await mkdir(paths.configDir, { recursive: true });
  const redactor = new Redactor();
  const logLines: string[] = [];
  const log = createLogger({ level: 'debug', redactor, journald: true, write: (l) => logLines.push(l) });
  const runner = new FakeRunner(opts.commands ?? []);
  const services = new FakeServices();
  const cfg = testConfig(opts.config ?? {});
  let now = Date.parse('2026-01-01T00:00:00Z');
  const secretFileOwnerUid = process.geteuid?.() ?? 0;
  const ctx: TaskContext = {
    cfg,
    paths,
    run: runner.run,
    log,
    redactor,
    imds: new ImdsClient(cfg.azure.imdsEndpoint, 500),
    services,
    state: emptyState('00000000-0000-0000-0000-000000000001', 'test'),
    secret: (ref, keyPath) => readSecret(ref, keyPath, { cfg, paths, log, redactor, secretFileOwnerUid }),
    secrets: new SecretCache(),
    // Only root can make the root-owned secret files the agent requires; without root the test's own uid stands in.
    secretFileOwnerUid,
    signal: new AbortController().signal,
    clock: {
      now: () => now,
      sleep: async (ms) => {
        now += ms;
      },
    },
  };
  return { ctx, root, paths, runner, services, logLines, log };
}

/** Write a 0600 secret file under the test root, owned by the test's uid (root's in production: see the context's `secret`). */
export async function writeSecretFile(paths: Paths, file: string, value: string): Promise<void> {
  const real = paths.under(file);
  await mkdir(path.dirname(real), { recursive: true });
  await writeFile(real, value, { mode: 0o600 });
}
