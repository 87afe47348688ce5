/**
 * The daemon's Azure SDK calls in a child process (src/agent/azure/child.ts):
 * the real `dsvm-agent azure-call` command, started from source, against the
 * loopback fakes (IMDS, ARM, Files REST).
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { execa } from 'execa';
import t from 'tap';
import type { Fakes } from '../../fakes/index.js';
import { makeTestContext } from '../../helpers/context.js';
import { AzureChild, childPassEnv, errorFromReply, replyForError } from '../../../src/agent/azure/child.js';
import { permanent } from '../../../src/agent/errors.js';
import { createRunner, type RunRequest } from '../../../src/agent/runner.js';
import { readSecret } from '../../../src/agent/secrets.js';
import { storageKey } from '../../../src/tasks/share-mount/key.js';
import { ensureShareFolder, shareUsage } from '../../../src/tasks/share-mount/index.js';
import { KEY, SUBSCRIPTION, agentError, startShareFakes } from '../share-mount/helpers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const ENTRY = [
  process.execPath,
  '--import',
  pathToFileURL(path.join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href,
  path.join(ROOT, 'src/main.ts'),
];
const IDENTITY = '11111111-1111-1111-1111-111111111111';

let fakes: Fakes;
let shareDir: string;
t.before(async () => {
  ({ fakes, shareDir } = await startShareFakes({
    identities: [{ clientId: IDENTITY, systemAssigned: true, storageAccounts: ['contosofiles'] }],
  }));
});
t.teardown(() => fakes.close());

async function setup(resourceGroup = 'rg-dsvm') {
  const tc = await makeTestContext({
    config: {
      azure: { imdsEndpoint: fakes.urls.imds, managementEndpoint: fakes.urls.arm },
      share: {
        account: 'contosofiles',
        name: 'workspace',
        endpointSuffix: 'contoso.test',
        filesEndpoint: `${fakes.urls.files}/contosofiles`,
        key: { armListKeys: { subscriptionId: SUBSCRIPTION, resourceGroup } },
      },
    },
  });
  const realRun = createRunner({ log: tc.log, redactor: tc.ctx.redactor });
  const requests: RunRequest[] = [];
  const forwarded: string[] = [];
  const child = new AzureChild({
    command: ENTRY,
    cfg: tc.ctx.cfg,
    root: tc.root,
    logLevel: 'debug',
    run: (req) => {
      requests.push(req);
      return realRun(req);
    },
    log: tc.log,
    redactor: tc.ctx.redactor,
    env: { NODE_EXTRA_CA_CERTS: fakes.caFile },
    forwardLog: (text) => forwarded.push(text),
  });
  tc.ctx.azureChild = child;
  return { ...tc, child, requests, forwarded };
}

t.test('storage key, usage and folders through the child, against the fakes', async (t) => {
  const s = await setup();
  fakes.reset();
  await writeFile(path.join(shareDir, 'usage.bin'), Buffer.alloc(8192));

  t.equal(await storageKey(s.ctx), KEY, 'the key came back from ARM listKeys in the child');
  t.same(await shareUsage(s.ctx), { usedBytes: 8192, quotaBytes: 100 * 1024 ** 3 });
  t.same(await ensureShareFolder(s.ctx, 'alice/notebooks'), ['alice', 'alice/notebooks']);
  t.equal(s.child.calls, 3, 'three calls, three children');
  t.equal(fakes.requests.arm.filter((r) => r.route === 'arm.listKeys').length, 1, 'listKeys once: the key is kept in the daemon');
  t.ok(
    fakes.requests.files.some((r) => r.route === 'files.shareStats' && r.auth === 'SharedKey'),
    'the child signed with the key',
  );

  // The child logged (debug) what it did; those lines reached the daemon's log stream.
  t.match(s.forwarded.join(''), /listing keys of storage account "contosofiles"/);
  // The key went over stdin only: never in argv, never in forwarded logs or the daemon's log.
  for (const r of s.requests) t.notOk([r.file, ...(r.args ?? [])].join(' ').includes(KEY), 'no key in argv');
  t.ok(s.requests.filter((r) => r.input?.includes(KEY)).length === 2, 'the key travels on stdin to the two share calls that need it');
  t.notOk(s.forwarded.join('').includes(KEY), 'no key in the child log');
  t.notOk(s.logLines.join('\n').includes(KEY), 'no key in the daemon log');
  t.notOk(s.ctx.redactor.redact(`x ${KEY} y`).includes(KEY), 'the key is registered for redaction');
});

t.test('a share call without the key: one child resolves the key and makes the call; the daemon keeps the key', async (t) => {
  const s = await setup();
  fakes.reset();
  const usage = await shareUsage(s.ctx);
  t.equal(usage.quotaBytes, 100 * 1024 ** 3);
  t.equal(s.child.calls, 1, 'one child');
  t.notOk('key' in JSON.parse(s.requests[0]!.input!), 'the request had no key');
  t.equal(await storageKey(s.ctx), KEY, 'the daemon now has the key');
  t.equal(s.child.calls, 1, 'without another child');
  t.equal(s.requests[0]!.nice, 10, 'the child runs at a lower CPU priority');
  t.notOk(s.logLines.join('\n').includes(KEY), 'no key in the daemon log');
});

t.test("the child's errors come back with their kind, reason and fix", async (t) => {
  t.test('wrong resource group: permanent 404 from ARM', async (t) => {
    const s = await setup('rg-wrong');
    await t.rejects(
      storageKey(s.ctx),
      agentError({
        kind: 'permanent',
        reason: 'share-account-not-found',
        message: /resource group "rg-wrong"/,
        fix: /armListKeys\.subscriptionId\/resourceGroup/,
      }),
    );
  });
  t.test('Files REST busy: transient', async (t) => {
    const s = await setup();
    await storageKey(s.ctx);
    fakes.fail('files.shareStats', { status: 503, times: 4 });
    await t.rejects(shareUsage(s.ctx), agentError({ kind: 'transient', reason: 'share-rest-unreachable' }));
    fakes.reset();
  });
  t.test('Key Vault: the reference goes to the child, its error comes back', async (t) => {
    const s = await setup();
    // A vault URL that is not a vault host: the SDK refuses it before any secret is read.
    await t.rejects(
      readSecret({ keyVault: { vaultUrl: fakes.urls.keyVault, name: 'join-password' } }, 'domain.joinPassword', {
        cfg: s.ctx.cfg,
        paths: s.paths,
        log: s.log,
        redactor: s.ctx.redactor,
        azureChild: s.child,
      }),
      agentError({ kind: 'permanent', message: /^domain\.joinPassword: Key Vault secret "join-password"/ }),
    );
    t.equal(s.child.calls, 1);
    t.match(JSON.parse(s.requests[0]!.input!), {
      op: 'keyvault-secret',
      keyPath: 'domain.joinPassword',
      ref: { keyVault: { name: 'join-password' } },
    });
  });
});

t.test('a child that dies, says nothing or hangs: transient, and its stdout is never quoted', async (t) => {
  const tc = await makeTestContext();
  const run = createRunner({ log: tc.log, redactor: tc.ctx.redactor });
  const mk = (script: string, timeoutMs?: number) =>
    new AzureChild({
      command: ['/bin/sh', '-c', script, 'sh'],
      cfg: tc.ctx.cfg,
      root: tc.root,
      logLevel: 'info',
      run,
      log: tc.log,
      redactor: tc.ctx.redactor,
      env: {},
      forwardLog: () => undefined,
      ...(timeoutMs ? { timeoutMs } : {}),
    });
  await t.rejects(
    mk('echo "{\\"half-of-a-secret"; echo "boom" >&2; exit 3').call({ op: 'arm-list-keys' }),
    agentError({ kind: 'transient', reason: 'azure-child-failed', message: /boom/ }),
  );
  try {
    await mk('echo "{\\"half-of-a-secret"; exit 3').call({ op: 'arm-list-keys' });
    t.fail('should throw');
  } catch (err) {
    t.notMatch((err as Error).message, /half-of-a-secret/);
  }
  await t.rejects(mk('sleep 5', 300).call({ op: 'arm-list-keys' }), agentError({ kind: 'transient', message: /timed out/ }));
  // The command's own argument comes last: `sh -c SCRIPT sh azure-call` sees it as $1.
  await t.rejects(mk('echo "$1" >&2; exit 1').call({ op: 'arm-list-keys' }), { message: /azure-call/ });
});

t.test('error records round-trip', async (t) => {
  const e = permanent('share: no', { fix: 'do this', reason: 'share-x' });
  const back = errorFromReply((replyForError(e) as { ok: false; error: never }).error);
  t.match(back, agentError({ kind: 'permanent', message: 'share: no', fix: 'do this', reason: 'share-x' }));
  const plain = errorFromReply((replyForError(new TypeError('bad')) as { ok: false; error: never }).error);
  t.equal(plain.message, 'bad');
  t.notOk('kind' in plain);
});

t.test('the environment passed on: trust, proxies, allocator, agent settings; nothing else', async (t) => {
  t.same(
    childPassEnv({
      NODE_EXTRA_CA_CERTS: '/ca.pem',
      HTTPS_PROXY: 'http://proxy:3128',
      no_proxy: 'localhost',
      MALLOC_ARENA_MAX: '2',
      DSVM_AGENT_LOG_LEVEL: 'debug',
      AZURE_CLIENT_SECRET: 'x',
      HOME: '/root',
      NOTIFY_SOCKET: '/run/systemd/notify',
    }),
    {
      NODE_EXTRA_CA_CERTS: '/ca.pem',
      HTTPS_PROXY: 'http://proxy:3128',
      no_proxy: 'localhost',
      MALLOC_ARENA_MAX: '2',
      DSVM_AGENT_LOG_LEVEL: 'debug',
    },
  );
});

t.test('`dsvm-agent azure-call` refuses anything but a request: exit 2, a JSON error', async (t) => {
  const r = await execa(ENTRY[0]!, [...ENTRY.slice(1), 'azure-call'], { input: 'not json', reject: false });
  t.equal(r.exitCode, 2);
  t.match(JSON.parse(r.stdout), { ok: false, error: { kind: 'config', message: /stdin is not a JSON request/ } });
  const r2 = await execa(ENTRY[0]!, [...ENTRY.slice(1), 'azure-call'], { input: JSON.stringify({ op: 'format-disk' }), reject: false });
  t.equal(r2.exitCode, 2);
  t.match(JSON.parse(r2.stdout), { ok: false, error: { message: /lacks op, cfg or root/ } });
});
