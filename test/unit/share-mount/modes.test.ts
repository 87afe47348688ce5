/**
 * The share task across modes: NFS preflight, switching from Kerberos (our
 * own automount at the mount point) to key mode, and the key leaving the
 * disk when a mode without one takes over.
 */
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import type { Fakes } from '../../fakes/index.js';
import { renderUnits } from '../../../src/tasks/share-mount/units.js';
import { agentError, credentialsFile, setupTask, startShareFakes, systemdServices, type TaskSetup } from './helpers.js';

let fakes: Fakes;
t.before(async () => {
  ({ fakes } = await startShareFakes());
});
t.teardown(() => fakes.close());

const NFS = { type: 'nfs', key: undefined };

async function installNfsHelper(s: TaskSetup): Promise<void> {
  await mkdir(path.dirname(s.paths.mountNfsHelper), { recursive: true });
  await writeFile(s.paths.mountNfsHelper, '', { mode: 0o755 });
}

t.test('NFS preflight', async (t) => {
  t.test('probes TCP 2049 and makes no Files REST call', async (t) => {
    const ports: number[] = [];
    const s = await setupTask(fakes, {
      share: NFS,
      tcp: async (_address, port) => {
        ports.push(port);
        return { ok: true };
      },
    });
    await installNfsHelper(s);
    const rest = fakes.requests.files.length;
    const found = await s.task.check(s.ctx);
    t.same(ports, [2049]);
    t.equal(found.changes.at(-1), 'mount contosofiles.file.contoso.test:/contosofiles/workspace at /data/workspace');
    t.equal(fakes.requests.files.length, rest, 'NFS has no key to check');
  });
  t.test('2049 blocked: the NFS message, with the network fix', async (t) => {
    const s = await setupTask(fakes, { share: NFS, tcp: async () => ({ ok: false, why: 'timeout' }) });
    await installNfsHelper(s);
    await t.rejects(
      s.task.check(s.ctx),
      agentError({
        kind: 'transient',
        reason: 'share-port-blocked',
        message: /^share: TCP 2049 \(NFS\) on contosofiles\.file\.contoso\.test \(10\.77\.0\.3\) is not reachable: no answer within 3 s$/,
        fix: /private endpoint or a service endpoint for the storage account on this subnet, and allow outbound TCP 2049 in the NSG/,
      }),
    );
  });
  t.test('mount.nfs missing: names nfs-common', async (t) => {
    const s = await setupTask(fakes, { share: NFS });
    await t.rejects(
      s.task.check(s.ctx),
      agentError({ kind: 'permanent', reason: 'share-helper-missing', message: /mount\.nfs is not installed/, fix: /nfs-common/ }),
    );
  });
});

/** Our own Kerberos automount unit, as the task wrote it for that mode. */
async function writeKerberosAutomount(s: TaskSetup): Promise<string> {
  const units = renderUnits({
    share: { account: 'contosofiles', name: 'workspace', mountPoint: '/data/workspace' },
    mode: 'smb-kerberos',
    source: '//contosofiles.file.contoso.test/workspace',
    options: ['vers=3.1.1', 'sec=krb5', 'multiuser'],
  });
  const file = path.join(s.paths.systemdUnitDir, 'data-workspace.automount');
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, units.files['data-workspace.automount']!);
  return file;
}

t.test('Kerberos to key mode: our armed automount is stopped and removed, then the share mounts', async (t) => {
  const cases = [
    { name: 'systemd stops the trigger', systemd: true, want: [] },
    { name: 'without systemd the trigger is unmounted', systemd: false, want: ['umount', 'mount'] },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const s = await setupTask(fakes);
      const automount = await writeKerberosAutomount(s);
      s.mounts.state = 'findmnt-autofs.json';
      const services = systemdServices(s, {
        stop: (u) => {
          if (u === 'data-workspace.automount') s.mounts.state = 'findmnt-not-mounted.json';
        },
        start: (u) => {
          if (u === 'data-workspace.mount') s.mounts.state = 'findmnt-cifs.json';
        },
      });
      const ctx = c.systemd ? { ...s.ctx, services } : s.ctx;
      const found = await s.task.check(ctx);
      t.match(found.changes, [
        'write credentials file /etc/smbcredentials/contosofiles.cred (root, 0600)',
        'write unit /etc/systemd/system/data-workspace.mount',
        'remove unit data-workspace.automount (no longer used)',
        'stop data-workspace.automount, the Kerberos automount holding /data/workspace',
        'mount //contosofiles.file.contoso.test/workspace at /data/workspace',
      ]);
      await s.task.apply(ctx, found);
      await t.rejects(stat(automount), { code: 'ENOENT' }, 'the automount unit is gone');
      t.equal(s.mounts.state, 'findmnt-cifs.json', 'the share is mounted');
      const acts = s.services.actions;
      t.ok(
        acts.indexOf('stop data-workspace.automount') >= 0 &&
          acts.indexOf('stop data-workspace.automount') < acts.indexOf('disable data-workspace.automount'),
      );
      if (c.systemd)
        t.ok(acts.indexOf('stop data-workspace.automount') < acts.indexOf('start data-workspace.mount'), 'stopped before the mount starts');
      t.same(
        s.runner
          .argv()
          .filter((a) => /^u?mount /.test(a))
          .map((a) => a.split(' ')[0]),
        c.want,
      );
      t.same((await s.task.check(ctx)).changes, [], 'converged');
    });
  }
  t.test('a trigger with no unit of ours is still somebody else’s', async (t) => {
    const s = await setupTask(fakes);
    s.mounts.state = 'findmnt-autofs.json';
    await t.rejects(s.task.check(s.ctx), agentError({ reason: 'share-mountpoint-busy' }));
  });
});

t.test('switching to a mode without a key removes the credentials file', async (t) => {
  const cases = [
    {
      name: 'Kerberos',
      share: { auth: 'kerberos', key: undefined },
      change: 'Kerberos uses no storage key',
      before: 'findmnt-cifs.json' as const,
      after: 'findmnt-cifs.json' as const,
    },
    {
      name: 'NFS',
      share: NFS,
      change: 'NFS uses no storage key',
      before: 'findmnt-not-mounted.json' as const,
      after: 'findmnt-nfs.json' as const,
    },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const s = await setupTask(fakes);
      await installNfsHelper(s);
      await s.task.apply(s.ctx, await s.task.check(s.ctx));
      t.ok((await stat(credentialsFile(s.root))).isFile(), 'key mode wrote it');
      s.mounts.state = c.before;
      const share = { ...s.ctx.cfg.share!, ...c.share } as typeof s.ctx.cfg.share;
      const ctx = { ...s.ctx, cfg: { ...s.ctx.cfg, share } };
      ctx.state.facts.computerName = 'DSVM-01';
      const found = await s.task.check(ctx);
      t.match(found.changes, [`remove credentials file /etc/smbcredentials/contosofiles.cred: ${c.change}`]);
      await s.task.apply(ctx, found);
      s.mounts.state = c.after;
      await t.rejects(stat(credentialsFile(s.root)), { code: 'ENOENT' }, 'the key is off the disk');
      t.same(await readdir(path.join(s.root, 'etc')).then((e) => e.includes('smbcredentials')), false, 'and its empty directory');
      t.notOk(
        (await s.task.check(ctx)).changes.some((x) => x.includes('credentials')),
        'nothing left to remove',
      );
    });
  }
});
