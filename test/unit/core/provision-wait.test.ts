// `provision` started while another process runs first boot (the enabled
// unit started it before cloud-init's runcmd got there) waits for it,
// bounded and saying so, then answers with that run's outcome from the
// state: exit 0 when it joined, 1 with its errors when it failed, and
// exit 3 (not ready) only when the wait runs out. Before, it exited 3 at once.
import t, { type Test } from 'tap';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { provision } from '../../../src/app/commands/provision.js';
import { acquireLock } from '../../../src/agent/lock.js';
import { createLogger } from '../../../src/agent/log.js';
import { makePaths, type Paths } from '../../../src/agent/paths.js';
import { Redactor } from '../../../src/agent/redact.js';
import { emptyState, StateStore, type AgentState } from '../../../src/agent/state.js';

const log = createLogger({ level: 'error', redactor: new Redactor(), write: () => undefined });
// IMDS on a closed loopback port: the VM id comes from the product UUID at once.
const CONFIG = `domain: { name: contoso.test, joinUser: j, joinPassword: { file: /etc/dsvm-agent/jp } }
azure: { imdsEndpoint: "http://127.0.0.1:1" }
`;

async function machine(t: Test): Promise<{ root: string; paths: Paths; store: StateStore; state: AgentState }> {
  const root = await mkdtemp(path.join(tmpdir(), 'dsvm-provision-wait-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const paths = makePaths(root);
  await mkdir(paths.configDir, { recursive: true });
  await writeFile(paths.configFile, CONFIG);
  await mkdir(path.dirname(paths.productUuid), { recursive: true });
  await writeFile(paths.productUuid, 'uuid-1\n');
  const store = new StateStore(paths.stateFile, log);
  // The other run has started: its state says so, and it holds the lock.
  const state = emptyState('uuid-1', 'product_uuid');
  state.vmIds = { product_uuid: 'uuid-1' };
  state.firstBootStartedAt = new Date().toISOString();
  await store.write(state);
  return { root, paths, store, state };
}

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, deps: { out: (s: string) => void out.push(s), err: (s: string) => void err.push(s) } };
}

t.test('the other run completes: provision waits, says so, and exits 0 with its outcome', async (t) => {
  const m = await machine(t);
  const release = await acquireLock(m.paths.lockFile, 'first boot (the daemon)');
  const o = io();
  const t0 = Date.now();
  const running = provision({ root: m.root }, {}, { ...o.deps, waitMs: 20_000, progressMs: 200 });
  await new Promise((r) => setTimeout(r, 1000));
  m.state.firstBootCompletedAt = new Date().toISOString();
  m.state.tasks = { preflight: { appliedAt: m.state.firstBootCompletedAt }, 'domain-join': { appliedAt: m.state.firstBootCompletedAt } };
  await m.store.write(m.state);
  await release();
  const code = await running;
  t.equal(code, 0, 'exit 0: the VM is provisioned');
  t.ok(Date.now() - t0 >= 1000, 'it waited for the other run');
  t.match(o.out.join(''), /first boot was done by the other run/);
  // The first line at once, then one per 200 ms slice that ran (a loaded machine runs fewer in the 1 s).
  t.ok(o.err.length >= 2, `progress lines while waiting (${o.err.length})`);
  t.match(o.err[0], /waiting for it .*dsvm-agent status/);
});

t.test('the other run fails: provision exits 1 with its errors', async (t) => {
  const m = await machine(t);
  const release = await acquireLock(m.paths.lockFile, 'first boot (the daemon)');
  const o = io();
  const running = provision({ root: m.root }, {}, { ...o.deps, waitMs: 20_000, progressMs: 200 });
  await new Promise((r) => setTimeout(r, 500));
  m.state.tasks = { 'domain-join': { lastError: 'adcli join: wrong password (fix: check domain.joinPassword)' } };
  await m.store.write(m.state);
  await release();
  t.equal(await running, 1);
  t.match(o.out.join(''), /domain-join: FAILED: adcli join: wrong password[\s\S]*in the other run/);
});

t.test('the other run outlasts the bound: not ready (exit 3), after waiting', async (t) => {
  const m = await machine(t);
  const release = await acquireLock(m.paths.lockFile, 'first boot (the daemon)');
  t.teardown(release);
  const o = io();
  const t0 = Date.now();
  await t.rejects(provision({ root: m.root }, {}, { ...o.deps, waitMs: 800, progressMs: 200 }), {
    name: 'AgentError',
    kind: 'notReady',
    reason: 'locked',
  });
  t.ok(Date.now() - t0 >= 750, `waited ${Date.now() - t0} ms before giving up`);
});
