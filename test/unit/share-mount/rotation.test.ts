/**
 * A new storage key never takes a working share down: the task (rotation)
 * and the daemon's repair (remountShare) check it over Files REST first, and
 * fall back to the previous credentials file when the mount refuses it.
 */
import { readFile, stat } from 'node:fs/promises';
import t from 'tap';
import type { Fakes } from '../../fakes/index.js';
import { writeSecretFile } from '../../helpers/context.js';
import { FakeRunner } from '../../helpers/fake-runner.js';
import { SecretCache } from '../../../src/agent/secrets.js';
import { runTasks, type TaskContext } from '../../../src/agent/task.js';
import { repairsByCheck } from '../../../src/agent/capability.js';
import { capabilities } from '../../../src/app/capabilities.js';
import { remountShare } from '../../../src/tasks/share-mount/index.js';
import {
  KEY,
  ROTATED_KEY,
  SUBSCRIPTION,
  WRONG_KEY,
  agentError,
  cloudArmAgent,
  credentials,
  credentialsFile,
  setupTask,
  startShareFakes,
  type TaskSetup,
} from './helpers.js';

let fakes: Fakes;
t.before(async () => {
  ({ fakes } = await startShareFakes());
});
t.teardown(() => fakes.close());
// Rotations change the account's keys in the fake: every test starts from KEY.
t.beforeEach(() => fakes.reset());

const once = { initialMs: 1, factor: 1, maxDelayMs: 1, maxAttempts: 1, maxElapsedMs: 1000 };
const SMB_REFUSED = { exitCode: 32, stderr: 'mount error(13): Permission denied\nRefer to the mount.cifs(8) manual page\n' };
const HOST_DOWN = { exitCode: 32, stderr: 'mount error(112): Host is down\n' };

/** The share mounted with KEY by a first run, then the key source changed to `key`; a new context, as in a new provision run. */
async function mountedThenRotated(key: string, setup: Parameters<typeof setupTask>[1] = {}): Promise<TaskSetup & { next: TaskContext }> {
  const s = await setupTask(fakes, setup);
  await s.task.apply(s.ctx, await s.task.check(s.ctx));
  await writeSecretFile(s.paths, '/etc/dsvm-agent/storage-key', `${key}\n`);
  s.runner.calls.length = 0;
  return { ...s, next: { ...s.ctx, secrets: new SecretCache() } };
}

/** Which credentials file each mount(8) call saw. */
function recordMountCredentials(s: TaskSetup): string[] {
  const seen: string[] = [];
  s.mounts.onMount = async () => {
    seen.push(await readFile(credentialsFile(s.root), 'utf8'));
  };
  return seen;
}

const mountCalls = (r: FakeRunner | TaskSetup['runner']): string[] =>
  r
    .argv()
    .filter((a) => /^u?mount /.test(a))
    .map((a) =>
      a
        .split(' ')
        .slice(0, a.startsWith('umount -l') ? 2 : 1)
        .join(' '),
    );

t.test('task: a rotated key the account refuses leaves the old file and the working mount', async (t) => {
  const s = await mountedThenRotated(WRONG_KEY);
  const error = {
    kind: 'permanent',
    reason: 'share-auth-failed',
    message: /refused the new key from share\.key\.file \(\/etc\/dsvm-agent\/storage-key\).*were left as they were/,
    fix: /write the current key1 or key2 of storage account "contosofiles" to \/etc\/dsvm-agent\/storage-key/,
  };
  await t.rejects(s.task.check(s.next), agentError(error), 'check (and plan) say why before anything changes');
  const [outcome] = await runTasks([s.task], { ...s.ctx, secrets: new SecretCache() }, { backoff: once });
  t.match(outcome, { status: 'failed', error });
  t.equal(await readFile(credentialsFile(s.root), 'utf8'), credentials(KEY), 'the old credentials file is untouched');
  t.equal(s.mounts.state, 'findmnt-cifs.json', 'the share is still mounted');
  t.same(mountCalls(s.runner), [], 'no unmount, no mount');
  t.notOk(s.logLines.some((l) => l.includes(WRONG_KEY)));
});

t.test('task: a rotated key the account accepts is written and the share remounted with it', async (t) => {
  fakes.state.seed({ storageAccounts: [{ name: 'contosofiles', keys: [ROTATED_KEY, KEY] }] });
  const s = await mountedThenRotated(ROTATED_KEY);
  const seen = recordMountCredentials(s);
  const found = await s.task.check(s.next);
  t.equal(fakes.requests.files.at(-1)?.route, 'files.shareProperties', 'the new key was checked over REST');
  await s.task.apply(s.next, found);
  t.same(mountCalls(s.runner), ['umount', 'mount']);
  t.same(seen, [credentials(ROTATED_KEY)]);
});

t.test('task: the mount refuses a verified key: the old file comes back and the share is mounted with it', async (t) => {
  fakes.state.seed({ storageAccounts: [{ name: 'contosofiles', keys: [ROTATED_KEY, KEY] }] });
  const s = await mountedThenRotated(ROTATED_KEY);
  const seen = recordMountCredentials(s);
  s.mounts.mountQueue = [SMB_REFUSED];
  await t.rejects(
    s.task.apply(s.next, await s.task.check(s.next)),
    agentError({
      reason: 'share-auth-failed',
      message:
        /mount error\(13\).*; \/etc\/smbcredentials\/contosofiles\.cred was restored and \/data\/workspace mounted again with the previous key, so the new key from share\.key\.file \(\/etc\/dsvm-agent\/storage-key\) is not in use/,
      fix: /write the current key1 or key2 .* to \/etc\/dsvm-agent\/storage-key .*then run dsvm-agent provision/,
    }),
  );
  t.same(mountCalls(s.runner), ['umount', 'mount', 'mount']);
  t.same(seen, [credentials(ROTATED_KEY), credentials(KEY)], 'first with the new file, then with the restored one');
  t.equal(await readFile(credentialsFile(s.root), 'utf8'), credentials(KEY));
  t.equal(s.mounts.state, 'findmnt-cifs.json', 'mounted again');
});

t.test('task: the previous key fails too: both failures are reported', async (t) => {
  fakes.state.seed({ storageAccounts: [{ name: 'contosofiles', keys: [ROTATED_KEY, KEY] }] });
  const s = await mountedThenRotated(ROTATED_KEY);
  s.mounts.mountQueue = [SMB_REFUSED, HOST_DOWN];
  await t.rejects(
    s.task.apply(s.next, await s.task.check(s.next)),
    agentError({
      reason: 'share-auth-failed',
      message: /mount error\(13\).*was restored, but mounting with the previous key failed too: .*Host is down/,
    }),
  );
  t.equal(await readFile(credentialsFile(s.root), 'utf8'), credentials(KEY), 'the file that worked is what is left on disk');
});

t.test('task: a busy share is not forced: the verified key waits for the next remount', async (t) => {
  fakes.state.seed({ storageAccounts: [{ name: 'contosofiles', keys: [ROTATED_KEY, KEY] }] });
  const s = await mountedThenRotated(ROTATED_KEY);
  const runner = new FakeRunner([
    {
      file: 'umount',
      args: (a) => a[0] !== '-l',
      times: 1,
      result: { exitCode: 32, stderr: 'umount: /data/workspace: target is busy.\n' },
    },
    ...s.mounts.commands(),
  ]);
  const ctx = { ...s.next, run: runner.run };
  await s.task.apply(ctx, await s.task.check(ctx));
  t.same(mountCalls(runner), ['umount'], 'no lazy unmount, no mount');
  t.equal(s.mounts.state, 'findmnt-cifs.json', 'the running session keeps the share');
  t.equal(await readFile(credentialsFile(s.root), 'utf8'), credentials(ROTATED_KEY), 'the verified key is in place for the next mount');
  t.ok(s.logLines.some((l) => /could not remount \/data\/workspace now .*target is busy/.test(l)));
});

t.test('task: new options the mount refuses once: one more try (the fallback)', async (t) => {
  const cases = [
    { name: 'second try works', queue: [HOST_DOWN], rejects: false },
    { name: 'second try fails too', queue: [HOST_DOWN, HOST_DOWN], rejects: true },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const s = await setupTask(fakes);
      await s.task.apply(s.ctx, await s.task.check(s.ctx));
      s.runner.calls.length = 0;
      const share = s.ctx.cfg.share!;
      const ctx = { ...s.ctx, cfg: { ...s.ctx.cfg, share: { ...share, dirMode: '0750' } } };
      const found = await s.task.check(ctx);
      t.match(found.changes, ['write unit /etc/systemd/system/data-workspace.mount', 'remount /data/workspace to use the new options']);
      s.mounts.mountQueue = [...c.queue];
      if (c.rejects) await t.rejects(s.task.apply(ctx, found), agentError({ reason: 'share-port-blocked' }));
      else await s.task.apply(ctx, found);
      t.same(mountCalls(s.runner), ['umount', 'mount', 'mount']);
      t.equal(s.mounts.state, c.rejects ? 'findmnt-not-mounted.json' : 'findmnt-cifs.json');
      t.ok(s.logLines.some((l) => /with the new options failed .*Host is down.*trying once more/.test(l)));
    });
  }
});

/** The daemon's context caches secrets for its whole life, as createTaskContext does. */
function cacheSecrets(ctx: TaskContext): void {
  const read = ctx.secret;
  const cache = new Map<string, Promise<string>>();
  ctx.secret = (ref, keyPath) => {
    const k = JSON.stringify(ref);
    if (!cache.has(k)) cache.set(k, read(ref, keyPath));
    return cache.get(k)!;
  };
}

/** Mounted with KEY by the task in the daemon's own (long-lived) context. */
async function daemonMounted(setup: Parameters<typeof setupTask>[1] = {}): Promise<TaskSetup> {
  const s = await setupTask(fakes, setup);
  cacheSecrets(s.ctx);
  await s.task.apply(s.ctx, await s.task.check(s.ctx));
  s.runner.calls.length = 0;
  return s;
}

t.test('repair: a key regenerated since provision reaches the credentials file, then the share is remounted', async (t) => {
  fakes.state.seed({ storageAccounts: [{ name: 'contosofiles', keys: [ROTATED_KEY, KEY] }] });
  const s = await daemonMounted();
  await writeSecretFile(s.paths, '/etc/dsvm-agent/storage-key', `${ROTATED_KEY}\n`);
  const seen = recordMountCredentials(s);
  const checks = fakes.requests.files.length;
  await remountShare(s.ctx, s.http);
  t.equal(await readFile(credentialsFile(s.root), 'utf8'), credentials(ROTATED_KEY), 'resolved again, past the context caches');
  t.same(seen, [credentials(ROTATED_KEY)]);
  t.same(mountCalls(s.runner), ['umount', 'mount']);
  t.ok(
    fakes.requests.files.slice(checks).some((r) => r.route === 'files.shareProperties' && r.status === 200),
    'the new key was checked over REST before it was written',
  );
  t.notOk(s.logLines.some((l) => l.includes(ROTATED_KEY)));
});

t.test('repair: the key is unchanged: the file is not rewritten', async (t) => {
  const s = await daemonMounted();
  const before = await stat(credentialsFile(s.root));
  await remountShare(s.ctx, s.http);
  t.equal((await stat(credentialsFile(s.root))).ino, before.ino, 'same file (an atomic rewrite would be a new inode)');
  t.same(mountCalls(s.runner), ['umount', 'mount']);
});

t.test('repair: through ARM listKeys, as provision resolves it', async (t) => {
  fakes.state.seed({ storageAccounts: [{ name: 'contosofiles', keys: [KEY, ROTATED_KEY] }] });
  const s = await daemonMounted({
    share: { key: { armListKeys: { subscriptionId: SUBSCRIPTION, resourceGroup: 'rg-dsvm' } } },
    config: { azure: { imdsEndpoint: fakes.urls.imds, managementEndpoint: 'https://management.azure.com' } },
    http: { agent: cloudArmAgent(fakes) },
  });
  t.equal(await readFile(credentialsFile(s.root), 'utf8'), credentials(KEY));
  // key1 regenerated in Azure.
  fakes.state.seed({ storageAccounts: [{ name: 'contosofiles', keys: [ROTATED_KEY, KEY] }] });
  const lists = fakes.requests.arm.filter((r) => r.route === 'arm.listKeys').length;
  await remountShare(s.ctx, s.http);
  t.equal(fakes.requests.arm.filter((r) => r.route === 'arm.listKeys').length, lists + 1, 'listKeys asked again');
  t.equal(await readFile(credentialsFile(s.root), 'utf8'), credentials(ROTATED_KEY));
});

t.test('repair: a new key the account refuses: nothing touched, the repair fails with the fix', async (t) => {
  const s = await daemonMounted();
  await writeSecretFile(s.paths, '/etc/dsvm-agent/storage-key', `${WRONG_KEY}\n`);
  await t.rejects(
    remountShare(s.ctx, s.http),
    agentError({
      kind: 'permanent',
      reason: 'share-auth-failed',
      message: /new key from share\.key\.file/,
      fix: /\/etc\/dsvm-agent\/storage-key/,
    }),
  );
  t.equal(await readFile(credentialsFile(s.root), 'utf8'), credentials(KEY));
  t.same(mountCalls(s.runner), []);
});

t.test('repair: the mount refuses the new key: the previous file is restored and mounted', async (t) => {
  fakes.state.seed({ storageAccounts: [{ name: 'contosofiles', keys: [ROTATED_KEY, KEY] }] });
  const s = await daemonMounted();
  await writeSecretFile(s.paths, '/etc/dsvm-agent/storage-key', `${ROTATED_KEY}\n`);
  const seen = recordMountCredentials(s);
  s.mounts.mountQueue = [SMB_REFUSED];
  await t.rejects(remountShare(s.ctx, s.http), agentError({ reason: 'share-auth-failed', message: /mounted again with the previous key/ }));
  t.same(seen, [credentials(ROTATED_KEY), credentials(KEY)]);
  t.equal(s.mounts.state, 'findmnt-cifs.json');
});

t.test('repair: something else mounted there is an error, never touched', async (t) => {
  const s = await daemonMounted();
  s.mounts.state = 'findmnt-tmpfs.json';
  const error = agentError({
    kind: 'permanent',
    reason: 'share-mountpoint-busy',
    message: /scratch \(tmpfs\) is mounted at \/data\/workspace, not the share/,
  });
  await t.rejects(remountShare(s.ctx, s.http), error);
  // The daemon's repair is this very function: it records a failure with the reason, not a remount.
  const repair = repairsByCheck(capabilities).get('share-mounted');
  t.equal(repair?.action, 'remount-share', 'the share capability declares the remount');
  await t.rejects(repair!.run(s.ctx), error);
  t.same(mountCalls(s.runner), []);
});

t.test('no key in argv, stdin or logs through all of it', async (t) => {
  fakes.state.seed({ storageAccounts: [{ name: 'contosofiles', keys: [ROTATED_KEY, KEY] }] });
  const s = await daemonMounted();
  await writeSecretFile(s.paths, '/etc/dsvm-agent/storage-key', `${ROTATED_KEY}\n`);
  s.mounts.mountQueue = [SMB_REFUSED];
  await remountShare(s.ctx, s.http).catch(() => undefined);
  for (const key of [KEY, ROTATED_KEY]) {
    for (const c of s.runner.calls) t.notOk([c.file, ...(c.args ?? []), c.input ?? ''].join(' ').includes(key));
    t.notOk(s.logLines.some((l) => l.includes(key)));
  }
});
