// Asks each Azure fake in a client VM one real question, the way the agent's
// SDK clients do, and prints non-secret facts as JSON. Runs inside the client
// VM (`lab exec c1 -- node test/lab/fakes-probe.mjs`), because the fakes
// listen on that VM's own loopback. Expected secrets come on stdin and are
// only compared, never printed.
import { ShareServiceClient, StorageSharedKeyCredential } from '@azure/storage-file-share';

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const { urls, subscriptionId, resourceGroup, account, share, joinPassword, storageKey } = JSON.parse(
  Buffer.concat(chunks).toString('utf8'),
);

async function token(resource) {
  const url = new URL('/metadata/identity/oauth2/token', urls.imds);
  url.searchParams.set('api-version', '2018-02-01');
  url.searchParams.set('resource', resource);
  const res = await fetch(url, { headers: { Metadata: 'true' } });
  const body = await res.json();
  return { status: res.status, type: body.token_type, value: body.access_token };
}

const facts = {};

const instance = await fetch(new URL('/metadata/instance?api-version=2021-02-01', urls.imds), {
  headers: { Metadata: 'true' },
});
const compute = (await instance.json()).compute ?? {};
facts.imds = {
  status: instance.status,
  vmId: compute.vmId,
  name: compute.name,
  vmScaleSetName: compute.vmScaleSetName,
  computerName: compute.osProfile?.computerName,
};
const noHeader = await fetch(new URL('/metadata/instance?api-version=2021-02-01', urls.imds));
facts.imdsWithoutMetadataHeader = noHeader.status;

const vaultToken = await token('https://vault.azure.net');
facts.token = { status: vaultToken.status, type: vaultToken.type };
const secret = await fetch(new URL('/secrets/dsvm-join?api-version=7.4', urls.keyVault), {
  headers: { authorization: `Bearer ${vaultToken.value}` },
});
const secretBody = await secret.json();
facts.keyVault = { status: secret.status, valueMatches: secretBody.value === joinPassword, hasId: typeof secretBody.id === 'string' };

const armToken = await token('https://management.azure.com/');
const listKeys = await fetch(
  new URL(
    `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.Storage/storageAccounts/${account}/listKeys?api-version=2023-01-01`,
    urls.arm,
  ),
  { method: 'POST', headers: { authorization: `Bearer ${armToken.value}` } },
);
const keys = (await listKeys.json()).keys ?? [];
facts.arm = { status: listKeys.status, keyNames: keys.map((k) => k.keyName), key1Matches: keys[0]?.value === storageKey };

const service = new ShareServiceClient(`${urls.files}/${account}`, new StorageSharedKeyCredential(account, storageKey));
const dirName = `lab-probe-${process.pid}`;
const dir = service.getShareClient(share).getDirectoryClient(dirName);
await dir.create();
const stats = await service.getShareClient(share).getStatistics();
facts.files = { createdDirectory: dirName, shareUsageBytes: stats.shareUsageBytes };

const wrong = new ShareServiceClient(
  `${urls.files}/${account}`,
  new StorageSharedKeyCredential(account, Buffer.alloc(64, 1).toString('base64')),
);
facts.filesWrongKeyStatus = await wrong
  .getShareClient(share)
  .getProperties()
  .then(
    () => 200,
    (e) => e.statusCode,
  );

process.stdout.write(`${JSON.stringify(facts)}\n`);
