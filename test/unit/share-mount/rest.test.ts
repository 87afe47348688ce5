import { mkdtemp, stat, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import type { Fakes } from '../../fakes/index.js';
import { makeTestContext, writeSecretFile } from '../../helpers/context.js';
import { closeHandlesAndUnmount, ensureShareFolder, shareUsage } from '../../../src/tasks/share-mount/index.js';
import { folderSegments, isOwnHandle } from '../../../src/tasks/share-mount/rest.js';
import { FakeMounts, KEY, WRONG_KEY, agentError, startShareFakes } from './helpers.js';

let fakes: Fakes;
let shareDir: string;
t.before(async () => {
  ({ fakes, shareDir } = await startShareFakes());
});
t.teardown(() => fakes.close());

async function setup(key = KEY, share: Record<string, unknown> = {}) {
  const root = await mkdtemp(path.join(tmpdir(), 'share-rest-ctx-'));
  const mounts = new FakeMounts(root);
  const tc = await makeTestContext({
    root,
    commands: mounts.commands(),
    config: {
      share: {
        account: 'contosofiles',
        name: 'workspace',
        endpointSuffix: 'contoso.test',
        filesEndpoint: `${fakes.urls.files}/contosofiles`,
        key: { file: '/etc/dsvm-agent/storage-key' },
        ...share,
      },
    },
  });
  await writeSecretFile(tc.paths, '/etc/dsvm-agent/storage-key', key);
  return { ...tc, mounts, http: { agent: fakes.httpsAgent() } };
}

t.test('usage against quota through the Files REST fake', async (t) => {
  const s = await setup();
  await writeFile(path.join(shareDir, 'usage.bin'), Buffer.alloc(4096));
  const usage = await shareUsage(s.ctx, s.http);
  t.same(usage, { usedBytes: 4096, quotaBytes: 100 * 1024 ** 3 });
  t.ok(
    fakes.requests.files.some((r) => r.route === 'files.shareStats' && r.auth === 'SharedKey'),
    'signed with the shared key',
  );
  t.notOk(
    s.logLines.some((l) => l.includes(KEY)),
    'key not logged',
  );
});

t.test('REST failures', async (t) => {
  const cases = [
    { name: 'wrong key', key: WRONG_KEY, share: {}, error: { kind: 'permanent', reason: 'share-auth-failed', fix: /current key1\/key2/ } },
    { name: 'no such share', key: KEY, share: { name: 'nosuchshare' }, error: { kind: 'permanent', reason: 'share-not-found' } },
    { name: 'NFS has no REST', key: KEY, share: { type: 'nfs', key: undefined }, error: { kind: 'config', reason: 'share-rest-nfs' } },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const s = await setup(c.key, c.share);
      await t.rejects(ensureShareFolder(s.ctx, 'users/alice', s.http), agentError(c.error));
    });
  }
  t.test('service busy: transient', async (t) => {
    const s = await setup();
    fakes.fail('files.shareStats', { status: 503, times: 4 });
    await t.rejects(shareUsage(s.ctx, s.http), agentError({ kind: 'transient', reason: 'share-rest-unreachable' }));
    fakes.reset();
  });
});

t.test('ensureShareFolder: parents first, idempotent', async (t) => {
  const s = await setup();
  t.same(await ensureShareFolder(s.ctx, 'alice/notebooks', s.http), ['alice', 'alice/notebooks']);
  t.ok((await stat(path.join(shareDir, 'alice/notebooks'))).isDirectory());
  t.same(await ensureShareFolder(s.ctx, '/alice/notebooks/', s.http), [], 'second call creates nothing');
  t.same(
    await ensureShareFolder(s.ctx, 'Jean.Dupont/notebooks', s.http),
    ['Jean.Dupont', 'Jean.Dupont/notebooks'],
    'dots and upper case kept',
  );
  const bad = [
    { name: 'dot-dot', rel: 'alice/../bob' },
    { name: 'empty', rel: '/' },
    { name: 'forbidden character', rel: 'a:b' },
  ];
  for (const b of bad) t.throws(() => folderSegments(b.rel), agentError({ kind: 'config' }), b.name);
});

t.test('isOwnHandle', async (t) => {
  const me = { addresses: ['10.77.0.10', 'fe80::1'], names: ['dsvm-lab-client-0001', 'dsvm-lab-client', 'DSVM-0001'] };
  const cases = [
    { name: 'our IP with port, our NetBIOS name', h: { clientIp: '10.77.0.10:49152', clientName: 'DSVM-LAB-CLIENT' }, own: true },
    { name: 'our IP, no name reported', h: { clientIp: '10.77.0.10' }, own: true },
    { name: 'our IP, computer name', h: { clientIp: '10.77.0.10:445', clientName: 'dsvm-0001' }, own: true },
    { name: 'our IP behind a shared NAT, another VM’s name', h: { clientIp: '10.77.0.10:49153', clientName: 'DSVM-0002' }, own: false },
    { name: 'another IP', h: { clientIp: '10.77.0.11:49152', clientName: 'DSVM-LAB-CLIENT' }, own: false },
    { name: 'IPv6 in brackets with port', h: { clientIp: '[fe80::1]:49152' }, own: true },
    { name: 'IPv4-mapped IPv6', h: { clientIp: '::ffff:10.77.0.10' }, own: true },
  ];
  for (const c of cases) t.equal(isOwnHandle({ handleId: '1', path: 'x', ...c.h }, me), c.own, c.name);
});

t.test('closeHandlesAndUnmount: unmount first, then only this VM’s handles', async (t) => {
  const s = await setup();
  await mkdir(path.join(shareDir, 'users/alice'), { recursive: true });
  await writeFile(path.join(shareDir, 'users/alice/a.ipynb'), 'x');
  await mkdir(path.join(shareDir, 'users/bob'), { recursive: true });
  fakes.state.seed({
    handles: [
      {
        account: 'contosofiles',
        share: 'workspace',
        path: 'users/alice/a.ipynb',
        handleId: '101',
        clientIp: '10.77.0.10:49152',
        clientName: 'DSVM-LAB-CLIENT',
      },
      {
        account: 'contosofiles',
        share: 'workspace',
        path: 'users/alice',
        handleId: '102',
        clientIp: '10.77.0.10:49152',
        clientName: 'DSVM-LAB-CLIENT',
      },
      {
        account: 'contosofiles',
        share: 'workspace',
        path: 'users/bob',
        handleId: '201',
        clientIp: '10.77.0.11:50000',
        clientName: 'DSVM-LAB-CLIEN2',
      },
      {
        account: 'contosofiles',
        share: 'workspace',
        path: 'users/alice/a.ipynb',
        handleId: '202',
        clientIp: '10.77.0.10:49999',
        clientName: 'OTHER-BEHIND-NAT',
      },
    ],
  });
  s.mounts.state = 'findmnt-cifs.json';
  let closedBeforeUmount = -1;
  s.mounts.onUmount = () => {
    closedBeforeUmount = fakes.requests.files.filter((x) => x.route === 'files.forceCloseHandles').length;
  };
  const r = await closeHandlesAndUnmount(s.ctx, {
    ...s.http,
    identity: { addresses: ['10.77.0.10'], names: ['dsvm-lab-client-0001', 'dsvm-lab-client'] },
  });
  t.same(r, { unmounted: true, closed: 2, failed: 0, foreign: 2, errors: [] });
  t.same(
    fakes.state
      .handles()
      .map((h) => h.handleId)
      .sort(),
    ['201', '202'],
    'other VMs’ handles stay open',
  );
  const order = s.runner.argv().filter((a) => a.startsWith('umount'));
  t.equal(order.length, 1, 'unmounted once');
  t.equal(closedBeforeUmount, 0, 'no handle was closed before the unmount (cached writes are flushed first)');
});
