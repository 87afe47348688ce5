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
  // A scale-set instance's id is the last segment of its resource id.
  instanceId: /\/virtualMachines\/([^/]+)$/.exec(compute.resourceId ?? '')?.[1],
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

// Scheduled events and open handles: seeded through the control API (as a
// test would), read and acted on through the wire format the agent uses, then
// the fakes go back to their start-up seed.
const control = (route, body) =>
  fetch(new URL(route, urls.control), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body ?? {}),
  });
const eventId = `probe-${process.pid}`;
await control('/seed', {
  scheduledEvents: [
    {
      EventId: eventId,
      EventType: 'Terminate',
      ResourceType: 'VirtualMachine',
      Resources: [compute.name],
      EventStatus: 'Scheduled',
      NotBefore: new Date(Date.now() + 600_000).toUTCString(),
      Description: '',
      EventSource: 'Platform',
      DurationInSeconds: -1,
    },
  ],
  handles: [{ account, share, path: dirName, clientIp: '10.77.0.10:49152', clientName: 'probe' }],
});
const eventsUrl = new URL('/metadata/scheduledevents?api-version=2020-07-01', urls.imds);
const before = await fetch(eventsUrl, { headers: { Metadata: 'true' } });
const beforeBody = await before.json();
const approve = await fetch(eventsUrl, {
  method: 'POST',
  headers: { Metadata: 'true', 'content-type': 'application/json' },
  body: JSON.stringify({ StartRequests: [{ EventId: eventId }] }),
});
const afterBody = await (await fetch(eventsUrl, { headers: { Metadata: 'true' } })).json();
facts.scheduledEvents = {
  status: before.status,
  incarnationIsNumber: Number.isInteger(beforeBody.DocumentIncarnation),
  event: beforeBody.Events?.map((e) => ({
    EventId: e.EventId,
    EventType: e.EventType,
    EventStatus: e.EventStatus,
    Resources: e.Resources,
  }))[0],
  approveStatus: approve.status,
  afterApprove: afterBody.Events?.[0]?.EventStatus,
  incarnationBumped: afterBody.DocumentIncarnation > beforeBody.DocumentIncarnation,
};
const root = service.getShareClient(share).rootDirectoryClient;
const handles = [];
for await (const h of root.listHandles({ recursive: true })) handles.push(h);
const closed = handles[0]
  ? await service.getShareClient(share).getDirectoryClient(handles[0].path).forceCloseHandle(handles[0].handleId)
  : undefined;
const left = [];
for await (const h of root.listHandles({ recursive: true })) left.push(h);
facts.handles = {
  listed: handles.map((h) => ({ path: h.path, clientIp: h.clientIp, clientName: h.clientName, hasId: typeof h.handleId === 'string' })),
  closed: closed?.closedHandlesCount,
  left: left.length,
};
await control('/reset');

process.stdout.write(`${JSON.stringify(facts)}\n`);
