/**
 * The agent's side of azure-answers.test.ts, in its own process as on a VM:
 * NODE_EXTRA_CA_CERTS (read only at start-up) trusts the fakes' CA for the
 * SDKs and fetch(), and test/helpers/localhost-dns.mjs resolves the vault's
 * *.localhost name. The test sets a fault on a fake, writes `{"id": CASE}`
 * (or `{"id": CASE, "phase": "recover"}` once the fault is used up) on stdin
 * and reads one JSON line back: how the agent call ended, how long it took,
 * what it left behind, and any unhandled rejection or exception seen since
 * the last line. Nothing else is written on stdout.
 */
import { createInterface } from 'node:readline';
import type { AnswerLimits } from '../../../src/agent/azure/bounded.js';
import { AgentError } from '../../../src/agent/errors.js';
import { readSecret } from '../../../src/agent/secrets.js';
import { storageKey } from '../../../src/tasks/share-mount/key.js';
import { closeOwnHandles, ensureShareFolderRest, shareUsageRest } from '../../../src/tasks/share-mount/rest.js';
import { fetchScheduledEvents, JournalStore, ScheduledEventsWatcher } from '../../../src/tasks/scheduled-events/index.js';
import { scaleSetVmIds } from '../../../src/tasks/sweep/index.js';
import { azureAgentContext, type AzureAgentSetup } from '../../helpers/azure-agent.js';
import type { TestContext } from '../../helpers/context.js';
import { AZURE_FAULT_CASES, IMDS_TIMEOUT_MS, MB, TRY_TIMEOUT_MS, type AgentCall } from './azure-cases.js';

export interface DriverSetup extends AzureAgentSetup {
  /** The address list-handles reports for this VM's own handles. */
  ownIp: string;
}

export interface DriverResult {
  id: string;
  phase: string;
  ok: boolean;
  value?: unknown;
  kind?: string;
  reason?: string;
  message?: string;
  fix?: string;
  ms: number;
  /** Unhandled rejections and uncaught exceptions since the last answer. */
  unhandled: string[];
  /** Log lines of the call (the watcher's warnings, a handle that failed to close). */
  logs: string[];
  /** Scheduled Events: the journal entry of the event, and the clean-up steps run so far. */
  journal?: unknown;
  steps?: string[];
}

const setup = JSON.parse(process.env.FAULT_SETUP ?? '{}') as DriverSetup;
const limits: AnswerLimits = { maxBytes: 4 * MB, tryTimeoutMs: TRY_TIMEOUT_MS };
const unhandled: string[] = [];
process.on('unhandledRejection', (err) => unhandled.push(`unhandledRejection: ${String((err as Error)?.stack ?? err)}`));
process.on('uncaughtException', (err) => unhandled.push(`uncaughtException: ${String(err?.stack ?? err)}`));

async function context(share: Record<string, unknown> = {}): Promise<TestContext> {
  return azureAgentContext(setup, { imdsTimeoutMs: IMDS_TIMEOUT_MS, share });
}

/** One watcher per approval case, kept for its recovery phase. */
const watchers = new Map<string, { tc: TestContext; watcher: ScheduledEventsWatcher; steps: string[] }>();

async function watcherFor(id: string): Promise<{ tc: TestContext; watcher: ScheduledEventsWatcher; steps: string[] }> {
  let w = watchers.get(id);
  if (!w) {
    const tc = await context();
    const steps: string[] = [];
    const watcher = new ScheduledEventsWatcher({
      ctx: tc.ctx,
      steps: [{ id: 'close-handles', label: 'closing share handles', run: async () => void steps.push('close-handles') }],
      log: tc.log,
      pollMs: 60_000,
    });
    w = { tc, watcher, steps };
    watchers.set(id, w);
  }
  return w;
}

type Outcome = Partial<DriverResult> & { value?: unknown };

const calls: Record<AgentCall, (id: string, phase: string) => Promise<Outcome>> = {
  'imds.compute': async () => ({ value: await (await context()).ctx.imds.compute() }),
  async 'events.poll'(id, phase) {
    const w = await watcherFor(`${id}:${phase === 'healthy' ? 'healthy' : 'fault'}`);
    // The classified error, then what the watcher makes of the same answer.
    const err = await fetchScheduledEvents(w.tc.ctx.imds).then(
      () => undefined,
      (e: unknown) => e,
    );
    await w.watcher.pollOnce();
    if (err) throw Object.assign(err as Error, { steps: w.steps, logs: w.tc.logLines });
    return { value: 'no error', steps: w.steps, logs: w.tc.logLines };
  },
  async 'events.approve'(id, phase) {
    const w = await watcherFor(`${id}:${phase === 'healthy' ? 'healthy' : 'fault'}`);
    await w.watcher.pollOnce();
    const journal = (await new JournalStore(w.tc.paths.stateDir).read()).events.ours;
    const base = { steps: [...w.steps], logs: [...w.tc.logLines], journal };
    if (phase === 'recover') return { ...base, value: 'recovered' };
    // The approval's own error, as the watcher met it (the fault's `times` covers this second POST).
    const err = await w.tc.ctx.imds.request('POST', '/metadata/scheduledevents?api-version=2020-07-01', { StartRequests: [] }).then(
      () => undefined,
      (e: unknown) => e,
    );
    if (err) throw Object.assign(err as Error, base);
    return { ...base, value: 'approved' };
  },
  async 'keyVault.secret'() {
    const tc = await context();
    const value = await readSecret({ keyVault: { vaultUrl: setup.vaultUrl, name: 'dsvm-join' } }, 'domain.joinPassword', {
      cfg: tc.ctx.cfg,
      paths: tc.paths,
      log: tc.log,
      redactor: tc.ctx.redactor,
      answerLimits: limits,
    });
    return { value: value.length };
  },
  async 'arm.listKeys'() {
    const tc = await context({ key: { armListKeys: { subscriptionId: setup.subscriptionId, resourceGroup: 'rg-dsvm' } } });
    return { value: (await storageKey(tc.ctx, { limits })).length };
  },
  async 'arm.scaleSetVms'() {
    const tc = await context();
    return {
      value: await scaleSetVmIds(tc.ctx, { subscriptionId: setup.subscriptionId, resourceGroup: 'rg-dsvm', scaleSet: 'dsvmpool' }, limits),
    };
  },
  'files.usage': async () => ({ value: await shareUsageRest((await context()).ctx, { limits }) }),
  'files.folder': async () => ({ value: await ensureShareFolderRest((await context()).ctx, 'users/alice', { limits }) }),
  async 'files.closeHandles'() {
    const tc = await context();
    const value = await closeOwnHandles(tc.ctx, { addresses: [setup.ownIp], names: ['DSVM-LAB-CLIENT'] }, { limits });
    return { value, logs: tc.logLines };
  },
};

async function runCase(id: string, phase: string): Promise<DriverResult> {
  const c = AZURE_FAULT_CASES.find((x) => x.id === id);
  if (!c) throw new Error(`no case ${id}`);
  const started = Date.now();
  let result: DriverResult;
  try {
    const out = await calls[c.call](id, phase);
    result = { id, phase, ok: true, ms: Date.now() - started, unhandled: [], logs: [], ...out };
  } catch (err) {
    const e = err as Error & Partial<DriverResult>;
    result = {
      id,
      phase,
      ok: false,
      ms: Date.now() - started,
      kind: e instanceof AgentError ? e.kind : `not an AgentError (${e?.name})`,
      message: String(e?.message ?? err),
      unhandled: [],
      logs: e.logs ?? [],
      ...(e instanceof AgentError && e.reason ? { reason: e.reason } : {}),
      ...(e instanceof AgentError && e.fix ? { fix: e.fix } : {}),
      ...(e.journal === undefined ? {} : { journal: e.journal }),
      ...(e.steps === undefined ? {} : { steps: e.steps }),
    };
  }
  // Let anything a call left floating (a rejected promise nobody awaits) surface first.
  await new Promise((r) => setTimeout(r, 50));
  result.unhandled = unhandled.splice(0);
  return result;
}

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  const req = JSON.parse(line) as { id: string; phase?: string };
  process.stdout.write(`${JSON.stringify(await runCase(req.id, req.phase ?? 'fault'))}\n`);
}
