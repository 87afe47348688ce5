/**
 * The loopback Azure fakes, exercised with the real Azure SDKs the agent
 * uses, so the wire formats are the ones the SDKs send and parse.
 *
 * Safety: every socket this process opens is checked; anything that is not
 * loopback is refused and fails the last test (an SDK falling back to
 * 169.254.169.254 or a public endpoint would show up there).
 */
import net from 'node:net';
import { spawn } from 'node:child_process';
import { mkdtemp, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import https from 'node:https';
import t from 'tap';
import { startFakes, type Fakes } from '../fakes/index.js';

const nonLoopback: string[] = [];
const isLoopbackHost = (host: string): boolean =>
  host === 'localhost' || host.endsWith('.localhost') || host === '::1' || /^127\./.test(host);
const realConnect = net.Socket.prototype.connect;
// A test-only guard: refuse (asynchronously, like a network error) any connection off loopback.
net.Socket.prototype.connect = function guardedConnect(this: net.Socket, ...args: unknown[]) {
  const first = Array.isArray(args[0]) ? (args[0] as unknown[])[0] : args[0];
  const options = (
    typeof first === 'object' && first !== null ? first : typeof first === 'number' ? { port: first, host: args[1] } : { path: first }
  ) as { host?: unknown; path?: unknown };
  const host = typeof options.host === 'string' ? options.host : 'localhost';
  if (!options.path && !isLoopbackHost(host)) {
    nonLoopback.push(host);
    process.nextTick(() => this.destroy(new Error(`test guard: refused connection to non-loopback host ${host}`)));
    return this;
  }
  return (realConnect as (...a: unknown[]) => net.Socket).apply(this, args);
} as typeof net.Socket.prototype.connect;

const SYSTEM_ID = '11111111-0000-4000-8000-000000000001';
const USER_ID = '22222222-0000-4000-8000-000000000002';
const DENIED_ID = '33333333-0000-4000-8000-000000000003';
const SUBSCRIPTION = '44444444-0000-4000-8000-000000000004';
const storageKey = randomBytes(64).toString('base64');

let fakes: Fakes;
let shareDir: string;
let workDir: string;

t.before(async () => {
  workDir = await mkdtemp(path.join(os.tmpdir(), 'fakes-test-'));
  shareDir = path.join(workDir, 'share');
  await mkdir(shareDir);
  fakes = await startFakes({
    filesRoots: { 'contosofiles/workspace': shareDir },
    seed: {
      identities: [
        { clientId: SYSTEM_ID, systemAssigned: true, secrets: ['dsvm-join'], storageAccounts: ['contosofiles'] },
        { clientId: USER_ID, secrets: '*', storageAccounts: '*' },
        { clientId: DENIED_ID },
      ],
      secrets: { 'dsvm-join': { value: 'join-secret-value', version: 'v1' } },
      storageAccounts: [
        {
          name: 'contosofiles',
          subscriptionId: SUBSCRIPTION,
          resourceGroup: 'rg-dsvm',
          keys: [storageKey],
          shares: { workspace: { quotaGiB: 100 } },
        },
      ],
    },
  });
  // MSAL picks the managed-identity source once per process: set before any credential exists.
  process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST = fakes.urls.imds;
});

t.teardown(async () => {
  await fakes?.close();
  await rm(workDir, { recursive: true, force: true });
});

async function credential(clientId?: string) {
  const { ManagedIdentityCredential } = await import('@azure/identity');
  const retryOptions = { maxRetries: 0 };
  return clientId ? new ManagedIdentityCredential({ clientId, retryOptions }) : new ManagedIdentityCredential({ retryOptions });
}

t.test('IMDS token through @azure/identity ManagedIdentityCredential', async (t) => {
  const system = await (await credential()).getToken('https://vault.azure.net/.default');
  t.ok(system.token, 'system-assigned token');
  const sys = fakes.requests.imds.at(-1);
  t.equal(sys?.path, '/metadata/identity/oauth2/token/', 'MSAL adds the trailing slash');
  t.equal(sys?.headers.metadata, 'true');
  t.equal(sys?.query.resource, 'https://vault.azure.net');
  t.notOk(sys?.query.client_id, 'no client_id for the system identity');
  t.equal(sys?.clientId, SYSTEM_ID);

  const user = await (await credential(USER_ID)).getToken('https://management.azure.com/.default');
  t.ok(user.token);
  t.equal(fakes.requests.imds.at(-1)?.query.client_id, USER_ID);
  t.ok(user.expiresOnTimestamp > Date.now() + 3_600_000, 'expires_on parsed');

  await t.rejects((await credential(randomUUID())).getToken('https://vault.azure.net/.default'), /Identity not found/, 'unknown client id');
});

t.test('IMDS raw endpoints: header rules, instance metadata, scheduled events', async (t) => {
  const imds = fakes.urls.imds;
  const noHeader = await fetch(`${imds}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=x`);
  t.equal(noHeader.status, 400);
  t.same(await noHeader.json(), { error: 'invalid_request', error_description: 'Required metadata header not specified' });
  const md = { headers: { Metadata: 'true' } };
  t.equal((await fetch(`${imds}/metadata/instance?api-version=2021-02-01`)).status, 400, 'instance without Metadata');

  fakes.state.seed({
    vm: { compute: { name: 'dsvm-lab-client-0001', vmScaleSetName: 'dsvm-pool', osProfile: { computerName: 'dsvm-lab-client-0001' } } },
  });
  const doc = (await (await fetch(`${imds}/metadata/instance?api-version=2021-02-01`, md)).json()) as { compute: Record<string, unknown> };
  t.equal(doc.compute.name, 'dsvm-lab-client-0001');
  t.equal(doc.compute.vmScaleSetName, 'dsvm-pool');
  t.equal((doc.compute.osProfile as Record<string, unknown>).adminUsername, 'azureuser', 'deep merge keeps defaults');
  const compute = (await (await fetch(`${imds}/metadata/instance/compute?api-version=2021-02-01`, md)).json()) as Record<string, unknown>;
  t.equal(compute.subscriptionId, doc.compute.subscriptionId);
  t.equal(
    await (await fetch(`${imds}/metadata/instance/compute/osProfile/computerName?api-version=2021-02-01&format=text`, md)).text(),
    'dsvm-lab-client-0001',
  );

  fakes.state.seed({
    scheduledEvents: [
      {
        EventId: 'E1',
        EventType: 'Terminate',
        Resources: ['dsvm-pool_3'],
        NotBefore: 'Mon, 19 Sep 2016 18:29:47 GMT',
        DurationInSeconds: -1,
      },
      { EventId: 'E2', EventType: 'Freeze', Resources: ['other_1'] },
    ],
  });
  const url = `${imds}/metadata/scheduledevents?api-version=2020-07-01`;
  const before = (await (await fetch(url, md)).json()) as { DocumentIncarnation: number; Events: Array<Record<string, unknown>> };
  t.equal(before.Events.length, 2);
  t.match(before.Events[0], {
    EventId: 'E1',
    EventType: 'Terminate',
    ResourceType: 'VirtualMachine',
    EventStatus: 'Scheduled',
    EventSource: 'Platform',
  });
  const ack = await fetch(url, {
    method: 'POST',
    headers: { Metadata: 'true', 'content-type': 'application/json' },
    body: JSON.stringify({ StartRequests: [{ EventId: 'E1' }] }),
  });
  t.equal(ack.status, 200);
  const after = (await (await fetch(url, md)).json()) as typeof before;
  t.equal(after.DocumentIncarnation, before.DocumentIncarnation + 1);
  t.equal(after.Events[0]?.EventStatus, 'Started');
  t.same(
    fakes.state.approvals().map((a) => a.EventId),
    ['E1'],
  );
  t.same(fakes.requests.imds.at(-2)?.body, { EventIds: ['E1'] });
  t.equal((await fetch(url, { method: 'POST', headers: { Metadata: 'true' }, body: 'nope' })).status, 400);
});

t.test('Key Vault through @azure/keyvault-secrets SecretClient', async (t) => {
  const { SecretClient } = await import('@azure/keyvault-secrets');
  const agent = fakes.httpsAgent();
  const client = (clientId?: string, url = fakes.vaultUrl()) =>
    credential(clientId).then((c) => new SecretClient(url, c, { agent, retryOptions: { maxRetries: 0 } }));

  const secret = await (await client()).getSecret('dsvm-join');
  t.equal(secret.value, 'join-secret-value');
  t.equal(secret.properties.version, 'v1');
  const kv = fakes.requests.keyVault.slice(-2);
  t.match(
    kv,
    [
      { status: 401, auth: 'none' },
      { status: 200, auth: 'Bearer', clientId: SYSTEM_ID },
    ],
    'challenge, then the token',
  );
  t.equal(fakes.requests.imds.at(-1)?.query.resource, 'https://vault.localhost', 'token asked for the challenge resource');

  fakes.state.seed({ secrets: { 'dsvm-join': 'rotated' } });
  t.equal((await (await client()).getSecret('dsvm-join')).value, 'rotated', 'latest version');
  t.equal((await (await client()).getSecret('dsvm-join', { version: 'v1' })).value, 'join-secret-value', 'pinned version');

  await t.rejects((await client(DENIED_ID)).getSecret('dsvm-join'), { statusCode: 403, code: 'Forbidden' }, 'identity without a grant');
  await t.rejects((await client()).getSecret('not-granted'), { statusCode: 403, code: 'Forbidden' }, 'RBAC before existence');
  await t.rejects((await client(USER_ID)).getSecret('missing'), { statusCode: 404, code: 'SecretNotFound' });
  fakes.state.seed({ secrets: { off: { value: 'x', enabled: false } } });
  await t.rejects((await client(USER_ID)).getSecret('off'), { statusCode: 403, code: 'Forbidden' }, 'disabled secret');

  const ipUrl = fakes.urls.keyVault;
  await t.rejects(
    (await client(USER_ID, ipUrl)).getSecret('dsvm-join'),
    /does not match the requested domain/,
    'an IP vault URL fails the SDK challenge check',
  );
  const lenient = new SecretClient(ipUrl, await credential(USER_ID), {
    agent,
    retryOptions: { maxRetries: 0 },
    disableChallengeResourceVerification: true,
  });
  t.equal((await lenient.getSecret('dsvm-join')).value, 'rotated', 'unless verification is disabled');

  fakes.fail('imds.token', { drop: true, times: 1 });
  const err = await (await client(randomUUID())).getSecret('dsvm-join').catch((e: unknown) => e as Error);
  t.equal(err instanceof Error && err.name, 'CredentialUnavailableError', 'IMDS down surfaces as CredentialUnavailableError');
  t.match((err as Error).message, /ManagedIdentityCredential/);
});

t.test('ARM listKeys through @azure/arm-storage StorageManagementClient', async (t) => {
  const { StorageManagementClient } = await import('@azure/arm-storage');
  const agent = fakes.httpsAgent();
  const client = async (clientId?: string) =>
    new StorageManagementClient(await credential(clientId), SUBSCRIPTION, {
      endpoint: fakes.urls.arm,
      agent,
      retryOptions: { maxRetries: 0 },
    });

  const result = await (await client()).storageAccounts.listKeys('rg-dsvm', 'contosofiles');
  t.match(result.keys, [
    { keyName: 'key1', value: storageKey, permissions: 'FULL' },
    { keyName: 'key2', permissions: 'FULL' },
  ]);
  const call = fakes.requests.arm.at(-1);
  t.equal(
    call?.path,
    `/subscriptions/${SUBSCRIPTION}/resourceGroups/rg-dsvm/providers/Microsoft.Storage/storageAccounts/contosofiles/listKeys`,
  );
  t.ok(call?.query['api-version'], 'api-version sent');
  t.equal(fakes.requests.imds.at(-1)?.query.resource, 'https://management.azure.com');

  await t.rejects((await client(DENIED_ID)).storageAccounts.listKeys('rg-dsvm', 'contosofiles'), {
    statusCode: 403,
    code: 'AuthorizationFailed',
  });
  await t.rejects((await client(USER_ID)).storageAccounts.listKeys('rg-dsvm', 'nosuchacct'), { statusCode: 404, code: 'ResourceNotFound' });
  await t.rejects((await client(USER_ID)).storageAccounts.listKeys('rg-other', 'contosofiles'), {
    statusCode: 404,
    code: 'ResourceGroupNotFound',
  });

  const listKeysUrl = `${fakes.urls.arm}/subscriptions/${SUBSCRIPTION}/resourceGroups/rg-dsvm/providers/Microsoft.Storage/storageAccounts/contosofiles/listKeys?api-version=2023-05-01`;
  const noToken = await httpsPost(listKeysUrl, agent);
  t.equal(noToken.status, 401);
  t.match(JSON.parse(noToken.body), { error: { code: 'AuthenticationFailed' } });
  const vaultToken = (await (
    await fetch(`${fakes.urls.imds}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net`, {
      headers: { Metadata: 'true' },
    })
  ).json()) as {
    access_token: string;
  };
  const wrongAudience = await httpsPost(listKeysUrl, agent, { authorization: `Bearer ${vaultToken.access_token}` });
  t.equal(wrongAudience.status, 401);
  t.match(JSON.parse(wrongAudience.body), { error: { code: 'InvalidAuthenticationTokenAudience' } });
});

t.test('Azure Files through @azure/storage-file-share with a shared key', async (t) => {
  const { ShareServiceClient, StorageSharedKeyCredential } = await import('@azure/storage-file-share');
  // StoragePipelineOptions does not declare `agent`, but the pipeline passes its options on to core-rest-pipeline.
  const pipelineOptions = { agent: fakes.httpsAgent(), retryOptions: { maxTries: 1 } };
  const service = (key = storageKey) =>
    new ShareServiceClient(`${fakes.urls.files}/contosofiles`, new StorageSharedKeyCredential('contosofiles', key), pipelineOptions);
  const share = service().getShareClient('workspace');

  await share.getDirectoryClient('users').create();
  t.ok((await stat(path.join(shareDir, 'users'))).isDirectory(), 'directory made in the share folder');
  t.equal(fakes.requests.files.at(-1)?.auth, 'SharedKey');
  t.equal((await share.getDirectoryClient('users').createIfNotExists()).succeeded, false, 'ResourceAlreadyExists understood');
  await t.rejects(share.getDirectoryClient('users').create(), { statusCode: 409, code: 'ResourceAlreadyExists' });
  await t.rejects(share.getDirectoryClient('nope/deeper').create(), { statusCode: 404, code: 'ParentNotFound' });
  await share.getDirectoryClient('users/Jean.Dupont').create();
  t.ok(await share.getDirectoryClient('users/Jean.Dupont').exists());

  await writeFile(path.join(shareDir, 'users', 'Jean.Dupont', 'nb.ipynb'), Buffer.alloc(1234));
  t.equal((await share.getStatistics()).shareUsageBytes, 1234, 'usage = bytes under the share folder');
  t.equal((await share.getProperties()).quota, 100);

  const handle = (p: string, extra: Record<string, unknown> = {}) => ({ account: 'contosofiles', share: 'workspace', path: p, ...extra });
  fakes.state.seed({
    handles: [
      handle('users/alice/a.ipynb'),
      handle('users/alice'),
      handle('users/bob.txt', { handleId: '42' }),
      handle('other/x'),
      handle('users/alice/stuck', { closeFails: true }),
    ],
    files: { listHandlesPageSize: 2 },
  });
  await mkdir(path.join(shareDir, 'other'));
  const users = share.getDirectoryClient('users');
  const listed: string[] = [];
  for await (const h of users.listHandles({ recursive: true })) listed.push(h.path ?? '');
  t.same(listed.sort(), ['users/alice', 'users/alice/a.ipynb', 'users/alice/stuck', 'users/bob.txt'], 'recursive listing, across pages');
  t.ok(
    fakes.requests.files.some((r) => r.route === 'files.listHandles' && r.query.marker),
    'paged with NextMarker',
  );
  t.equal(fakes.requests.files.at(-1)?.headers['x-ms-recursive'], 'true');
  const direct: string[] = [];
  for await (const h of users.listHandles()) direct.push(h.path ?? '');
  t.same(direct.sort(), ['users/alice', 'users/bob.txt'], 'non-recursive: direct children only');
  const first = (await users.listHandles({ recursive: true }).byPage().next()).value;
  t.match(first?.handleList?.[0], { handleId: String, sessionId: String, clientIp: String, openTime: Date });

  t.match(await users.forceCloseHandle('42'), { closedHandlesCount: 1, closeFailureCount: 0 }, 'close one handle by id');
  fakes.state.seed({ files: { forceCloseBatch: 1 } });
  const closed = await users.forceCloseAllHandles({ recursive: true });
  t.same({ closed: closed.closedHandlesCount, failed: closed.closeFailureCount }, { closed: 2, failed: 1 });
  t.ok(
    fakes.requests.files.filter((r) => r.route === 'files.forceCloseHandles' && r.headers['x-ms-handle-id'] === '*').length >= 2,
    'followed x-ms-marker',
  );
  t.same(
    fakes.state
      .handles()
      .map((h) => h.path)
      .sort(),
    ['other/x', 'users/alice/stuck'],
  );

  const wrong = service(randomBytes(64).toString('base64')).getShareClient('workspace');
  await t.rejects(wrong.getProperties(), { statusCode: 403, code: 'AuthenticationFailed' }, 'wrong key');
  await t.rejects(service().getShareClient('nosuchshare').getProperties(), { statusCode: 404, code: 'ShareNotFound' });
});

t.test('failure injection: status, times, malformed, delay', async (t) => {
  const { SecretClient } = await import('@azure/keyvault-secrets');
  const kv = new SecretClient(fakes.vaultUrl(), await credential(USER_ID), {
    agent: fakes.httpsAgent(),
    retryOptions: { maxRetries: 1, retryDelayInMs: 10, maxRetryDelayInMs: 20 },
  });
  await kv.getSecret('dsvm-join'); // token and challenge done
  fakes.fail('keyVault.getSecret', { status: 503, times: 1 });
  t.equal((await kv.getSecret('dsvm-join')).value, 'rotated', 'retried past one injected 503');
  t.match(fakes.requests.keyVault.slice(-2), [{ status: 503, injected: true }, { status: 200 }]);

  fakes.fail('keyVault.*', { status: 500, body: { error: { code: 'Custom', message: 'boom' } }, times: 2 });
  await t.rejects(kv.getSecret('dsvm-join'), { statusCode: 500, code: 'Custom' }, 'custom body, every retry consumed');

  fakes.fail('imds.token', { malformed: true, times: 1 });
  const resp = await fetch(`${fakes.urls.imds}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=r`, {
    headers: { Metadata: 'true' },
  });
  await t.rejects(resp.json(), SyntaxError, 'malformed body');

  fakes.fail('imds.instance', { delayMs: 300, times: 1 });
  const t0 = Date.now();
  t.equal(
    (await fetch(`${fakes.urls.imds}/metadata/instance?api-version=2021-02-01`, { headers: { Metadata: 'true' } })).status,
    200,
    'delayed, then normal',
  );
  t.ok(Date.now() - t0 >= 280, 'delay applied');
  t.throws(() => fakes.fail('bad route!', {}), /bad route/);
});

t.test('control API', async (t) => {
  const control = fakes.urls.control;
  const post = (p: string, body: unknown) => fetch(`${control}${p}`, { method: 'POST', body: JSON.stringify(body) });
  t.equal((await post('/seed', { secrets: { 'from-control': 'v' }, identities: [{ clientId: USER_ID, secrets: '*' }] })).status, 200);
  t.ok(fakes.state.raw.secrets.has('from-control'));
  const bad = await post('/seed', { nope: 1 });
  t.equal(bad.status, 400);
  t.match(await bad.json(), { error: /nope/ });
  t.equal((await post('/fail', { route: 'arm.listKeys', status: 429, headers: { 'retry-after': '1' }, times: 1 })).status, 200);
  t.equal((await post('/fail', { status: 500 })).status, 400, 'route required');
  const requests = (await (await fetch(`${control}/requests?fake=imds&route=imds.token`)).json()) as Array<{
    route: string;
    headers: Record<string, string>;
  }>;
  t.ok(requests.length > 0 && requests.every((r) => r.route === 'imds.token'));
  const all = JSON.stringify(await (await fetch(`${control}/requests`)).json());
  t.notMatch(all, /join-secret-value|rotated/, 'no secret values recorded');
  t.notMatch(all, new RegExp(storageKey.slice(0, 20).replace(/[+/]/g, '.')), 'no storage key recorded');
  t.notMatch(all, /Bearer \S/, 'no bearer tokens recorded');
  const state = (await (await fetch(`${control}/state`)).json()) as Record<string, unknown>;
  t.notMatch(JSON.stringify(state), /join-secret-value|rotated/, 'state summary has no secret values');
  t.equal((await post('/reset', {})).status, 200);
  t.equal(fakes.requests.imds.length, 0, 'reset clears the log');
  t.notOk(fakes.state.raw.secrets.has('from-control'), 'reset returns to the start seed');
  t.equal(fakes.state.raw.secrets.get('dsvm-join')?.at(-1)?.value, 'join-secret-value');
});

function httpsPost(url: string, agent: https.Agent, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method: 'POST', agent, headers }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function runNode(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', (code) => resolve({ code, out }));
  });
}

t.test('a separate process trusts the CA through NODE_EXTRA_CA_CERTS', async (t) => {
  const probe = `require('https').get(process.argv[1] + '/secrets/x?api-version=7.5', (r) => { console.log('status', r.statusCode); r.resume(); }).on('error', (e) => { console.log('error', e.code); });`;
  const env = { PATH: process.env.PATH ?? '' };
  const trusted = await runNode(['-e', probe, fakes.urls.keyVault], { ...env, NODE_EXTRA_CA_CERTS: fakes.caFile });
  t.match(trusted.out, /status 401/, 'TLS accepted: Key Vault answered with its challenge');
  const untrusted = await runNode(['-e', probe, fakes.urls.keyVault], env);
  t.match(
    untrusted.out,
    /error (UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)/,
    'refused without the CA',
  );
});

t.test('serve.ts CLI writes the URL file and exits cleanly on SIGTERM', async (t) => {
  const dir = path.join(workDir, 'cli');
  await mkdir(dir);
  const out = path.join(dir, 'urls.json');
  const seedFile = path.join(dir, 'seed.json');
  await writeFile(seedFile, JSON.stringify({ secrets: { s: 'from-file' } }));
  const tsx = path.resolve('node_modules/tsx/dist/cli.mjs');
  const child = spawn(
    process.execPath,
    [
      tsx,
      'test/fakes/serve.ts',
      '--host',
      '127.0.0.1',
      '--out',
      out,
      '--state-dir',
      dir,
      '--files-root',
      `contosofiles=${shareDir}`,
      '--seed',
      seedFile,
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  let urls: Record<string, string> | undefined;
  for (let i = 0; i < 300 && !urls; i++) {
    urls = await readFile(out, 'utf8').then(
      (s) => JSON.parse(s) as Record<string, string>,
      () => undefined,
    );
    if (!urls) await new Promise((r) => setTimeout(r, 100));
  }
  t.ok(urls, `url file written (${output.trim()})`);
  t.same(Object.keys(urls ?? {}).sort(), ['arm', 'caFile', 'control', 'files', 'imds', 'keyVault']);
  t.equal(urls?.caFile, path.join(dir, 'ca.pem'));
  const state = (await (await fetch(`${urls?.control}/state`)).json()) as {
    secrets: Array<{ name: string }>;
    storageAccounts: Array<{ name: string; root: string }>;
  };
  t.ok(
    state.secrets.some((s) => s.name === 's'),
    'seed file applied',
  );
  t.match(state.storageAccounts, [{ name: 'contosofiles', root: shareDir }]);
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'exit 0 on SIGTERM');
  t.notMatch(output, /from-file/, 'nothing secret printed');
});

t.test('the loopback guard refuses other hosts', async (t) => {
  // 0.0.0.0 reaches this very host, so even a broken guard would leak nothing.
  const before = nonLoopback.length;
  const refused = (connect: () => net.Socket) =>
    new Promise<Error>((resolve) => {
      const sock = connect();
      sock.once('error', resolve);
      sock.once('connect', () => {
        sock.destroy();
        resolve(new Error('connected'));
      });
    });
  t.match((await refused(() => new net.Socket().connect({ host: '0.0.0.0', port: 9 }))).message, /test guard: refused/, 'options form');
  t.match((await refused(() => net.connect(9, '0.0.0.0'))).message, /test guard: refused/, 'normalized (port, host) form');
  t.same(nonLoopback.splice(before), ['0.0.0.0', '0.0.0.0'], 'recorded, then forgotten: only SDK leaks should fail the next test');
});

t.test('no SDK call left loopback', async (t) => {
  t.same(nonLoopback, [], 'every connection went to loopback');
});
