/**
 * The agent's Azure side as the out-of-process drivers set it up (the bad
 * answers driver, the proxy driver): a task context configured against the
 * loopback fakes, the storage key in its root-only file, an IMDS client with
 * the given timeout; and the contoso pool the fakes are seeded with for them
 * (one storage account with its share, one scale set with VM 3, this VM's
 * compute document).
 */
import { ImdsClient } from '../../src/agent/azure/imds.js';
import type { Seed } from '../fakes/index.js';
import { makeTestContext, writeSecretFile, type TestContext } from './context.js';

export interface AzureAgentSetup {
  imds: string;
  arm: string;
  files: string;
  vaultUrl: string;
  subscriptionId: string;
  storageKey: string;
}

/** A context whose config points every Azure endpoint at the fakes; `azure` and `share` add to those keys. */
export async function azureAgentContext(
  setup: AzureAgentSetup,
  opts: { imdsTimeoutMs: number; azure?: Record<string, unknown>; share?: Record<string, unknown> },
): Promise<TestContext> {
  const tc = await makeTestContext({
    config: {
      azure: { imdsEndpoint: setup.imds, managementEndpoint: setup.arm, ...opts.azure },
      share: {
        account: 'contosofiles',
        name: 'workspace',
        endpointSuffix: 'contoso.test',
        filesEndpoint: `${setup.files}/contosofiles`,
        key: { file: '/etc/dsvm-agent/storage-key' },
        ...opts.share,
      },
    },
  });
  await writeSecretFile(tc.paths, '/etc/dsvm-agent/storage-key', setup.storageKey);
  tc.ctx.imds = new ImdsClient(setup.imds, opts.imdsTimeoutMs);
  return tc;
}

/** The fakes' pool for those contexts: storage account contosofiles (share workspace), scale set dsvmpool with VM 3, and this VM dsvmpool_3. */
export function contosoPoolSeed(subscriptionId: string, key: string): Required<Pick<Seed, 'storageAccounts' | 'scaleSets' | 'vm'>> {
  return {
    storageAccounts: [
      { name: 'contosofiles', subscriptionId, resourceGroup: 'rg-dsvm', keys: [key], shares: { workspace: { quotaGiB: 100 } } },
    ],
    scaleSets: [{ name: 'dsvmpool', subscriptionId, resourceGroup: 'rg-dsvm', vms: [{ instanceId: '3', vmId: 'vm-3' }] }],
    vm: { compute: { name: 'dsvmpool_3', vmScaleSetName: 'dsvmpool' } },
  };
}
