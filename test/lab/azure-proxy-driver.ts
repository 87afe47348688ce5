/**
 * The agent's side of azure-proxy.test.ts: one process as on a VM (the
 * unit's environment is this process's: HTTPS_PROXY, NO_PROXY and
 * NODE_EXTRA_CA_CERTS for the fakes' CA), making every kind of Azure call the
 * agent makes with its own code: the managed identity's token and instance
 * metadata and Scheduled Events (IMDS), a Key Vault secret, ARM listKeys, the
 * sweep's ARM VM list, and Files REST (share usage, a folder). Prints one
 * JSON line: how each call ended.
 */
import { azureProxy, proxyDisplay } from '../../src/agent/azure/proxy.js';
import { readSecret } from '../../src/agent/secrets.js';
import { storageKey } from '../../src/tasks/share-mount/key.js';
import { ensureShareFolderRest, shareUsageRest } from '../../src/tasks/share-mount/rest.js';
import { fetchScheduledEvents } from '../../src/tasks/scheduled-events/index.js';
import { scaleSetVmIds } from '../../src/tasks/sweep/index.js';
import { azureAgentContext, type AzureAgentSetup } from '../helpers/azure-agent.js';
import type { TestContext } from '../helpers/context.js';

export interface ProxyDriverSetup extends AzureAgentSetup {
  /** azure.proxy in the config, when the round sets it. */
  proxy?: string;
}

export interface ProxyDriverResult {
  /** proxyDisplay() of the route the calls took, as status shows it. */
  route: string;
  calls: Record<string, { ok: boolean; message?: string }>;
}

const setup = JSON.parse(process.env.PROXY_SETUP ?? '{}') as ProxyDriverSetup;

async function context(share: Record<string, unknown> = {}): Promise<TestContext> {
  return azureAgentContext(setup, { imdsTimeoutMs: 3000, azure: setup.proxy === undefined ? {} : { proxy: setup.proxy }, share });
}

const calls: Record<string, () => Promise<unknown>> = {
  'imds.instance': async () => (await context()).ctx.imds.compute(),
  'imds.scheduledEvents': async () => fetchScheduledEvents((await context()).ctx.imds),
  async 'keyVault.getSecret'() {
    const tc = await context();
    const ref = { keyVault: { vaultUrl: setup.vaultUrl, name: 'dsvm-join' } };
    const deps = { cfg: tc.ctx.cfg, paths: tc.paths, log: tc.log, redactor: tc.ctx.redactor };
    return (await readSecret(ref, 'domain.joinPassword', deps)).length;
  },
  async 'arm.listKeys'() {
    const tc = await context({ key: { armListKeys: { subscriptionId: setup.subscriptionId, resourceGroup: 'rg-dsvm' } } });
    return (await storageKey(tc.ctx)).length;
  },
  'arm.listScaleSetVms': async () =>
    scaleSetVmIds((await context()).ctx, { subscriptionId: setup.subscriptionId, resourceGroup: 'rg-dsvm', scaleSet: 'dsvmpool' }),
  'files.shareStats': async () => shareUsageRest((await context()).ctx),
  'files.createDirectory': async () => ensureShareFolderRest((await context()).ctx, 'users/alice'),
};

const result: ProxyDriverResult = { route: '', calls: {} };
try {
  result.route = proxyDisplay(azureProxy({ imdsEndpoint: setup.imds, ...(setup.proxy === undefined ? {} : { proxy: setup.proxy }) }));
} catch (err) {
  result.route = `refused: ${(err as Error).message}`;
}
for (const [name, call] of Object.entries(calls)) {
  try {
    await call();
    result.calls[name] = { ok: true };
  } catch (err) {
    result.calls[name] = { ok: false, message: String((err as Error)?.message ?? err) };
  }
}
process.stdout.write(`${JSON.stringify(result)}\n`);
// The SDKs' keep-alive sockets would hold the process open.
process.exit(0);
