import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { Fakes } from '../../fakes/index.js';
import { makeTestContext, writeSecretFile } from '../../helpers/context.js';
import { SecretCache } from '../../../src/agent/secrets.js';
import { runTasks } from '../../../src/agent/task.js';
import { createShareMountTask, isMounted, probeShare, remountShare, undoShareMount } from '../../../src/tasks/share-mount/index.js';
import {
  KEY,
  ROTATED_KEY,
  SUBSCRIPTION,
  WRONG_KEY,
  agentError,
  cloudArmAgent,
  setupTask,
  startShareFakes,
  systemdServices,
  type TaskSetup,
} from './helpers.js';

let fakes: Fakes;
t.before(async () => {
  ({ fakes } = await startShareFakes());
});
t.teardown(() => fakes.close());

type Setup = TaskSetup;

const setup = (opts: Parameters<typeof setupTask>[1] = {}): Promise<Setup> => setupTask(fakes, opts);

/** No argv, stdin, log line or unit may carry the key. */
function assertKeyNowhere(t: Test, s: Setup, key = KEY): void {
  for (const c of s.runner.calls) {
    t.notOk([c.file, ...(c.args ?? [])].join(' ').includes(key), `key not in argv of ${c.file}`);
    t.notOk((c.input ?? '').includes(key), `key not in stdin of ${c.file}`);
  }
  t.notOk(
    s.logLines.some((l) => l.includes(key)),
    'key in no log line',
  );
  t.notOk(JSON.stringify(s.ctx.state).includes(key), 'key not in state');
}

t.test('skipped without a share', async (t) => {
  const tc = await makeTestContext();
  t.match(createShareMountTask().skip?.(tc.ctx), /no share configured/);
});

t.test('first mount (no systemd): credentials, unit, mount with the file, never the key', async (t) => {
  const s = await setup();
  const found = await s.task.check(s.ctx);
  t.same(found.changes, [
    'write credentials file /etc/smbcredentials/contosofiles.cred (root, 0600)',
    'write unit /etc/systemd/system/data-workspace.mount',
    'create mount point /data/workspace',
    'mount //contosofiles.file.contoso.test/workspace at /data/workspace',
  ]);
  await s.task.apply(s.ctx, found);

  const cred = path.join(s.root, 'etc/smbcredentials/contosofiles.cred');
  t.equal(await readFile(cred, 'utf8'), `username=contosofiles\npassword=${KEY}\n`);
  t.equal((await stat(cred)).mode & 0o777, 0o600);
  t.equal((await stat(path.dirname(cred))).mode & 0o777, 0o700);
  const unit = await readFile(path.join(s.root, 'etc/systemd/system/data-workspace.mount'), 'utf8');
  t.match(
    unit,
    'Options=vers=3.1.1,credentials=/etc/smbcredentials/contosofiles.cred,uid=0,gid=1999,dir_mode=0770,file_mode=0660,serverino,nosharesock,actimeo=30,mfsymlinks,_netdev,nofail',
  );
  t.match(unit, 'What=//contosofiles.file.contoso.test/workspace');
  t.ok((await stat(path.join(s.root, 'data/workspace'))).isDirectory(), 'mount point made');
  const mount = s.runner.calls.find((c) => c.file === 'mount');
  t.same(mount?.args, [
    '-t',
    'cifs',
    '-o',
    'vers=3.1.1,credentials=/etc/smbcredentials/contosofiles.cred,uid=0,gid=1999,dir_mode=0770,file_mode=0660,serverino,nosharesock,actimeo=30,mfsymlinks,_netdev,nofail',
    '//contosofiles.file.contoso.test/workspace',
    path.join(s.root, 'data/workspace'),
  ]);
  t.same(s.services.actions, ['daemon-reload', 'enable data-workspace.mount']);
  t.equal(fakes.requests.files.at(-1)?.route, 'files.shareProperties', 'the key was checked over REST before mounting');

  const again = await s.task.check(s.ctx);
  t.same(again.changes, [], 'converged: second check finds nothing');
  t.same(s.runner.unexpected, []);
  assertKeyNowhere(t, s);
});

t.test('runTasks converges and a second run changes nothing', async (t) => {
  const s = await setup();
  const backoff = { initialMs: 1, factor: 1, maxDelayMs: 1, maxAttempts: 1, maxElapsedMs: 1000 };
  const first = await runTasks([s.task], s.ctx, { backoff });
  t.match(first, [{ id: 'share-mount', status: 'ok', changed: true }]);
  const mountsBefore = s.runner.calls.filter((c) => c.file === 'mount').length;
  const second = await runTasks([s.task], s.ctx, { backoff });
  t.match(second, [{ id: 'share-mount', status: 'ok', changed: false }]);
  t.equal(s.runner.calls.filter((c) => c.file === 'mount').length, mountsBefore, 'no second mount');
  t.same(s.ctx.state.facts.shareSource, '//contosofiles.file.contoso.test/workspace');
});

t.test('idempotency and refusals from the mount table', async (t) => {
  const cases = [
    {
      name: 'something else mounted there: permanent, nothing written',
      table: 'findmnt-tmpfs.json' as const,
      error: { kind: 'permanent', reason: 'share-mountpoint-busy', message: /scratch \(tmpfs\) mounted; the agent never mounts over/ },
    },
    {
      name: 'another share mounted there',
      table: 'findmnt-cifs-other.json' as const,
      error: { kind: 'permanent', reason: 'share-mountpoint-busy', message: /otheraccount/ },
    },
    {
      name: 'an automount trigger in key mode',
      table: 'findmnt-autofs.json' as const,
      error: { kind: 'permanent', reason: 'share-mountpoint-busy' },
    },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const s = await setup();
      s.mounts.state = c.table;
      await t.rejects(s.task.check(s.ctx), agentError(c.error));
      await t.rejects(stat(path.join(s.root, 'etc/smbcredentials')), { code: 'ENOENT' }, 'no credentials written');
      t.notOk(
        s.runner.calls.some((c) => c.file === 'mount'),
        'no mount attempted',
      );
    });
  }
  t.test('already mounted from the right source, files in place: nothing', async (t) => {
    const s = await setup();
    await s.task.apply(s.ctx, await s.task.check(s.ctx));
    s.runner.calls.length = 0;
    const found = await s.task.check(s.ctx);
    t.same(found.changes, []);
    t.same(s.runner.argv(), ['findmnt -J -l -o TARGET,SOURCE,FSTYPE,OPTIONS'], 'only the mount table was read: no DNS, no port probe');
  });
  t.test('mounted by hand before the agent: only the files are written, no remount', async (t) => {
    const s = await setup();
    s.mounts.state = 'findmnt-cifs.json';
    const found = await s.task.check(s.ctx);
    t.same(found.changes, [
      'write credentials file /etc/smbcredentials/contosofiles.cred (root, 0600)',
      'write unit /etc/systemd/system/data-workspace.mount',
      'remount /data/workspace to use the new options',
    ]);
  });
});

t.test('key rotation rewrites the credentials file and remounts', async (t) => {
  const s = await setup();
  await s.task.apply(s.ctx, await s.task.check(s.ctx));
  // key2 regenerated in Azure and put in share.key (rotation.test.ts covers what goes wrong).
  fakes.state.seed({ storageAccounts: [{ name: 'contosofiles', keys: [KEY, ROTATED_KEY] }] });
  t.teardown(() => fakes.reset());
  const rotated = ROTATED_KEY;
  await writeSecretFile(s.paths, '/etc/dsvm-agent/storage-key', rotated);
  // A new context, as in a new process: its own secret cache, so the key is resolved afresh.
  const ctx = { ...s.ctx, secrets: new SecretCache() };
  s.runner.calls.length = 0;
  const found = await s.task.check(ctx);
  t.same(found.changes, [
    'rewrite credentials file /etc/smbcredentials/contosofiles.cred: the storage key changed',
    'remount /data/workspace to use the new key',
  ]);
  t.notOk(found.changes.join(' ').includes(rotated), 'the change text does not carry the key');
  await s.task.apply(ctx, found);
  t.equal(
    await readFile(path.join(s.root, 'etc/smbcredentials/contosofiles.cred'), 'utf8'),
    `username=contosofiles\npassword=${rotated}\n`,
  );
  t.same(
    s.runner
      .argv()
      .filter((a) => /^u?mount /.test(a))
      .map((a) => a.split(' ')[0]),
    ['umount', 'mount'],
    'unmounted, then mounted with the new key',
  );
  t.same((await s.task.check(ctx)).changes, []);
  assertKeyNowhere(t, s, rotated);
});

t.test('failures name the problem and the fix', async (t) => {
  const cases = [
    {
      name: 'port 445 blocked (no answer)',
      setup: { tcp: async () => ({ ok: false as const, why: 'timeout' }) },
      error: {
        kind: 'transient',
        reason: 'share-port-blocked',
        message:
          /TCP 445 \(SMB\) on contosofiles\.file\.contoso\.test \(10\.77\.0\.3\) is not reachable: no answer within 3 s\. A blocked port 445 is the most common Azure Files failure/,
        fix: /allow outbound TCP 445/,
      },
    },
    {
      name: 'port 445 refused',
      setup: { tcp: async () => ({ ok: false as const, why: 'refused' }) },
      error: { kind: 'transient', reason: 'share-port-blocked', message: /connection refused/ },
    },
    {
      name: 'wrong key: authentication failure before any mount',
      setup: { key: WRONG_KEY },
      error: {
        kind: 'permanent',
        reason: 'share-auth-failed',
        message: /refused the key \(403 AuthenticationFailed\)/,
        fix: /current key1\/key2/,
      },
    },
    {
      name: 'no such share',
      setup: { share: { name: 'nosuchshare' } },
      error: { kind: 'permanent', reason: 'share-not-found', fix: /create the file share/ },
    },
    {
      name: 'cifs-utils missing',
      setup: { helper: false },
      error: { kind: 'permanent', reason: 'share-helper-missing', fix: /install cifs-utils/ },
    },
    {
      name: 'group name that does not resolve yet',
      setup: { share: { gid: 'dsvm-users' } },
      error: { kind: 'transient', reason: 'share-id-unknown', fix: /resolves only once the machine is joined/ },
    },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const s = await setup(c.setup);
      await t.rejects(s.task.check(s.ctx), agentError(c.error));
      t.notOk(
        s.runner.calls.some((x) => x.file === 'mount'),
        'no mount attempted',
      );
      assertKeyNowhere(t, s, c.setup.key ?? KEY);
    });
  }

  t.test('DNS does not resolve', async (t) => {
    const s = await setup();
    s.mounts.dnsResult = { exitCode: 2 };
    await t.rejects(
      s.task.check(s.ctx),
      agentError({ kind: 'transient', reason: 'share-dns', message: /contosofiles\.file\.contoso\.test does not resolve/ }),
    );
  });

  const mountErrors = [
    {
      name: 'kernel without cifs (the lab host)',
      stderr:
        'mount error(19): No such device\nRefer to the mount.cifs(8) manual page (e.g. man mount.cifs) and kernel log messages (dmesg)\n',
      error: { kind: 'permanent', reason: 'share-kernel-no-cifs', message: /The kernel has no CIFS support/, fix: /modprobe cifs/ },
    },
    {
      name: 'key refused by SMB',
      stderr:
        'mount error(13): Permission denied\nRefer to the mount.cifs(8) manual page (e.g. man mount.cifs) and kernel log messages (dmesg)\n',
      error: { kind: 'permanent', reason: 'share-auth-failed', message: /authentication failure/ },
    },
    {
      name: 'host down while mounting',
      stderr: 'mount error(112): Host is down\n',
      error: { kind: 'transient', reason: 'share-port-blocked', message: /445/ },
    },
    {
      name: 'dialect refused',
      stderr: 'mount error(95): Operation not supported\n',
      error: { kind: 'permanent', reason: 'share-dialect', fix: /vers=3\.0/ },
    },
    { name: 'unknown failure', stderr: 'mount error(5): Input/output error\n', error: { kind: 'transient', reason: 'share-mount-failed' } },
  ];
  for (const c of mountErrors) {
    t.test(`mount fails: ${c.name}`, async (t) => {
      const s = await setup();
      s.mounts.mountResult = { exitCode: 32, stderr: c.stderr };
      await t.rejects(s.task.apply(s.ctx, await s.task.check(s.ctx)), agentError(c.error));
      assertKeyNowhere(t, s);
    });
  }
});

t.test('under systemd the unit mounts; Kerberos arms an automount', async (t) => {
  const cases = [
    {
      name: 'key',
      share: {},
      entry: 'data-workspace.mount',
      change: 'mount //contosofiles.file.contoso.test/workspace at /data/workspace',
      units: ['data-workspace.mount'],
    },
    {
      name: 'kerberos',
      share: { auth: 'kerberos', key: undefined },
      entry: 'data-workspace.automount',
      change: 'start data-workspace.automount (mounts //contosofiles.file.contoso.test/workspace on first access)',
      units: ['data-workspace.mount', 'data-workspace.automount'],
    },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const s = await setup({ share: c.share });
      const ctx = { ...s.ctx, services: systemdServices(s) };
      const found = await s.task.check(ctx);
      t.equal(found.changes.at(-1), c.change);
      await s.task.apply(ctx, found);
      t.same(s.services.actions, ['daemon-reload', `enable ${c.entry}`, `start ${c.entry}`]);
      for (const u of c.units) t.ok((await stat(path.join(s.root, 'etc/systemd/system', u))).isFile(), `${u} written`);
      t.notOk(
        s.runner.calls.some((x) => x.file === 'mount'),
        'mount(8) not called directly',
      );
    });
  }
  t.test('a failed start is explained from the unit journal', async (t) => {
    const s = await setup();
    s.runner.on({
      file: 'journalctl',
      result: {
        stdout:
          'Mounting data-workspace.mount...\nmount error(13): Permission denied\ndata-workspace.mount: Mount process exited, code=exited, status=32/n/a\n',
      },
    });
    const services = {
      ...systemdServices(s),
      start: async () => {
        throw new Error('systemctl start data-workspace.mount: Job for data-workspace.mount failed.');
      },
    };
    const ctx = { ...s.ctx, services };
    await t.rejects(s.task.apply(ctx, await s.task.check(ctx)), agentError({ reason: 'share-auth-failed' }));
  });
});

t.test('undo unmounts our share and removes unit and credentials', async (t) => {
  const s = await setup();
  await s.task.apply(s.ctx, await s.task.check(s.ctx));
  const removed = await undoShareMount(s.ctx);
  t.same(removed, [
    'mount /data/workspace',
    'unit /etc/systemd/system/data-workspace.mount',
    'credentials /etc/smbcredentials/contosofiles.cred',
  ]);
  t.ok(s.runner.argv().includes(`umount ${path.join(s.root, 'data/workspace')}`));
  t.same(await undoShareMount(s.ctx), [], 'second undo: nothing left');
  const other = await setup();
  other.mounts.state = 'findmnt-tmpfs.json';
  t.same(await undoShareMount(other.ctx), [], 'someone else’s mount is left alone');
  t.notOk(other.runner.calls.some((c) => c.file === 'umount'));
});

t.test('isMounted and probeShare read mountinfo; the stat has a deadline', async (t) => {
  const cases = [
    {
      name: 'not mounted',
      mountinfo: 'mountinfo-not-mounted.txt',
      stat: undefined,
      want: { mounted: false, responsive: false, reason: /nothing is mounted/ },
    },
    {
      name: 'something else',
      mountinfo: 'mountinfo-tmpfs.txt',
      stat: undefined,
      want: { mounted: false, responsive: false, fstype: 'tmpfs', reason: /not the share/ },
    },
    {
      name: 'automount armed',
      mountinfo: 'mountinfo-autofs.txt',
      stat: undefined,
      want: { mounted: false, automount: true, reason: /first access/ },
    },
    {
      name: 'mounted and answering',
      mountinfo: 'mountinfo-cifs.txt',
      stat: { stdout: 'smb2\n', durationMs: 12 },
      want: { mounted: true, responsive: true, source: '//contosofiles.file.contoso.test/workspace' },
    },
    {
      name: 'mounted and hung',
      mountinfo: 'mountinfo-cifs.txt',
      stat: { exitCode: null, signal: 'SIGKILL', timedOut: true, durationMs: 1500 },
      want: { mounted: true, responsive: false, reason: /did not answer within 1500 ms/ },
    },
    {
      name: 'mounted, server gone',
      mountinfo: 'mountinfo-cifs.txt',
      stat: { exitCode: 1, stderr: "stat: cannot read file system information for '/data/workspace': Host is down\n" },
      want: { mounted: true, responsive: false, reason: /Host is down/ },
    },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const s = await setup();
      await s.mounts.writeMountinfo(s.paths, c.mountinfo);
      if (c.stat) s.runner.on({ file: 'stat', result: c.stat });
      const p = await probeShare(s.ctx, { timeoutMs: 1500 });
      t.match(p, c.want);
      t.equal(await isMounted(s.ctx), c.want.mounted);
      const statCall = s.runner.calls.find((x) => x.file === 'stat');
      if (c.stat)
        t.same(
          { args: statCall?.args, timeoutMs: statCall?.timeoutMs },
          { args: ['-f', '-c', '%T', path.join(s.root, 'data/workspace')], timeoutMs: 1500 },
        );
      else t.notOk(statCall, 'the share is not touched');
    });
  }
});

t.test('storage key from ARM listKeys through the managed identity', async (t) => {
  // ARM at the public cloud's own name (sent to the fake), so the token asked for is the one ARM accepts.
  const arm = (rg: string) => ({
    share: { key: { armListKeys: { subscriptionId: SUBSCRIPTION, resourceGroup: rg } } },
    config: { azure: { imdsEndpoint: fakes.urls.imds, managementEndpoint: 'https://management.azure.com' } },
    http: { agent: cloudArmAgent(fakes) },
  });
  t.test('granted: the key comes from listKeys', async (t) => {
    fakes.state.seed({
      identities: [{ clientId: '11111111-1111-1111-1111-111111111111', systemAssigned: true, storageAccounts: ['contosofiles'] }],
    });
    const s = await setup(arm('rg-dsvm'));
    await s.task.apply(s.ctx, await s.task.check(s.ctx));
    t.equal(await readFile(path.join(s.root, 'etc/smbcredentials/contosofiles.cred'), 'utf8'), `username=contosofiles\npassword=${KEY}\n`);
    t.equal(fakes.requests.arm.filter((r) => r.route === 'arm.listKeys').at(-1)?.status, 200);
    assertKeyNowhere(t, s);
  });
  t.test('not granted: 403 names the role', async (t) => {
    fakes.state.seed({ identities: [{ clientId: '11111111-1111-1111-1111-111111111111', systemAssigned: true, storageAccounts: [] }] });
    const s = await setup(arm('rg-dsvm'));
    await t.rejects(
      s.task.check(s.ctx),
      agentError({ kind: 'permanent', reason: 'share-listkeys-forbidden', fix: /Storage Account Key Operator Service Role/ }),
    );
  });
  t.test('wrong resource group: 404 says which names to check', async (t) => {
    fakes.state.seed({ identities: [{ clientId: '11111111-1111-1111-1111-111111111111', systemAssigned: true, storageAccounts: '*' }] });
    const s = await setup(arm('rg-wrong'));
    await t.rejects(
      s.task.check(s.ctx),
      agentError({ kind: 'permanent', reason: 'share-account-not-found', message: /resource group "rg-wrong"/ }),
    );
  });
});

t.test('remountShare: unmount (detaching a hung share), then mount', async (t) => {
  const cases = [
    { name: 'plain umount works', umountFails: false, want: ['umount', 'mount'] },
    { name: 'hung share: umount fails, detached with -l', umountFails: true, want: ['umount', 'umount -l', 'mount'] },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const s = await setup();
      s.mounts.state = 'findmnt-cifs.json';
      if (c.umountFails) {
        const { FakeRunner } = await import('../../helpers/fake-runner.js');
        const runner = new FakeRunner([
          { file: 'umount', args: (a) => a[0] !== '-l', times: 1, result: { exitCode: 32, stderr: 'umount: target is busy.\n' } },
          ...s.mounts.commands(),
        ]);
        s.ctx.run = runner.run;
        await remountShare(s.ctx);
        t.same(
          runner
            .argv()
            .filter((a) => /^u?mount /.test(a))
            .map((a) =>
              a
                .split(' ')
                .slice(0, a.startsWith('umount -l') ? 2 : 1)
                .join(' '),
            ),
          c.want,
        );
      } else {
        await remountShare(s.ctx);
        t.same(
          s.runner
            .argv()
            .filter((a) => /^u?mount /.test(a))
            .map((a) => a.split(' ')[0]),
          c.want,
        );
      }
    });
  }
});
