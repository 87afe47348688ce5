// Where an unmount happens. Under systemd the daemon runs in a mount
// namespace of its own (the unit's ProtectKernelTunables= and friends): a
// umount made there would detach the share for the daemon alone, so it goes
// to PID 1 through systemd-run. Without systemd, umount(8) runs directly.
import t from 'tap';
import { umountCommand, unmountNow } from '../../../src/tasks/share-mount/mount.js';
import { FakeServices, makeTestContext } from '../../helpers/context.js';

/** The recording fake, as systemd: what share-mount sees on a real VM. */
class FakeSystemd extends FakeServices {
  override readonly kind = 'systemd' as const;
}

const FINDMNT_WITH_SHARE = JSON.stringify({
  filesystems: [{ target: '/data/workspace', source: '//acct.file.core.windows.net/workspace', fstype: 'cifs', options: 'rw' }],
});

t.test('the umount argv by service manager', async (t) => {
  const direct = await makeTestContext();
  t.same(umountCommand(direct.ctx, ['-l', '/data/workspace']), { file: 'umount', args: ['-l', '/data/workspace'], timeoutMs: 30_000 });
  const sd = await makeTestContext();
  sd.ctx.services = new FakeSystemd();
  const c = umountCommand(sd.ctx, ['/data/workspace']);
  t.equal(c.file, 'systemd-run');
  t.same(c.args.slice(c.args.indexOf('--')), ['--', 'umount', '/data/workspace'], 'umount runs as PID 1 child');
  t.ok(c.args.includes('--wait') && c.args.includes('--pipe'), 'waits and returns its output and exit code');
  t.ok(c.args.includes('RuntimeMaxSec=25'), 'PID 1 ends a umount stuck on a dead server');
});

t.test('under systemd a busy share the unit could not stop is detached in PID 1, lazily when allowed', async (t) => {
  let mounted = true;
  const s = await makeTestContext({
    commands: [
      { file: 'findmnt', result: () => ({ stdout: mounted ? FINDMNT_WITH_SHARE : JSON.stringify({ filesystems: [] }) }) },
      {
        file: 'systemd-run',
        args: (a) => a.at(-2) === 'umount' || (a.at(-3) === 'umount' && a.at(-2) !== '-l'),
        times: 1,
        result: { exitCode: 32, stderr: 'umount: /data/workspace: target is busy.\n' },
      },
      {
        file: 'systemd-run',
        args: (a) => a.at(-3) === 'umount' && a.at(-2) === '-l',
        result: () => {
          mounted = false;
          return { exitCode: 0 };
        },
      },
    ],
  });
  const services = new FakeSystemd();
  s.ctx.services = services;
  await unmountNow(s.ctx, { realMountPoint: '/data/workspace', units: { mount: 'data-workspace.mount' } }, { lazy: true });
  t.same(services.actions, ['stop data-workspace.mount'], 'the unit is asked first');
  t.same(
    s.runner.argv().filter((a) => !a.startsWith('findmnt')),
    [
      'systemd-run --quiet --wait --pipe --collect --service-type=exec -p RuntimeMaxSec=25 -- umount /data/workspace',
      'systemd-run --quiet --wait --pipe --collect --service-type=exec -p RuntimeMaxSec=25 -- umount -l /data/workspace',
    ],
  );
  t.notOk(
    s.runner.calls.some((c) => c.file === 'umount'),
    'never umount(8) in the daemon namespace',
  );
  t.same(s.runner.unexpected, []);
});
