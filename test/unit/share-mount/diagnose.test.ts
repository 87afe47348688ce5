/**
 * A failed mount, turned into the error an admin can act on. The outputs are
 * what mount.cifs, cifs.upcall (through mount.cifs) and mount.nfs print.
 */
import t from 'tap';
import { mountFailure } from '../../../src/tasks/share-mount/diagnose.js';
import type { ShareMode } from '../../../src/tasks/share-mount/options.js';

const share = { type: 'smb' as const, account: 'contosofiles', name: 'workspace', endpointSuffix: 'core.windows.net' };
const nfs = { ...share, type: 'nfs' as const };
const where = (mode: ShareMode) => ({
  share: mode === 'nfs' ? nfs : share,
  mode,
  source: mode === 'nfs' ? 'contosofiles.file.core.windows.net:/contosofiles/workspace' : '//contosofiles.file.core.windows.net/workspace',
  mountPoint: '/data/workspace',
});

t.test('mount failures by mode', async (t) => {
  const cases: Array<{ name: string; mode: ShareMode; output: string; want: Record<string, unknown> }> = [
    {
      name: 'NFS: the server refuses this client (network rules)',
      mode: 'nfs',
      output: 'mount.nfs: access denied by server while mounting contosofiles.file.core.windows.net:/contosofiles/workspace\n',
      want: {
        kind: 'permanent',
        reason: 'share-nfs-denied',
        message: /access denied by server.*The NFS server refused this client/,
        fix: /subnet to the storage account's network rules/,
      },
    },
    {
      name: 'NFS: permission denied',
      mode: 'nfs',
      output: 'mount.nfs: Permission denied\n',
      want: { kind: 'permanent', reason: 'share-nfs-denied' },
    },
    {
      name: 'NFS: no answer on 2049',
      mode: 'nfs',
      output: 'mount.nfs: Connection timed out\n',
      want: { kind: 'transient', reason: 'share-port-blocked', message: /TCP 2049 \(NFS\)/, fix: /allow outbound TCP 2049/ },
    },
    {
      name: 'NFS: no kernel support',
      mode: 'nfs',
      output: "mount: /data/workspace: unknown filesystem type 'nfs4'.\n",
      want: { kind: 'permanent', reason: 'share-kernel-no-cifs', message: /no NFS support/, fix: /modprobe nfs/ },
    },
    {
      name: 'Kerberos: access denied',
      mode: 'smb-kerberos',
      output:
        'mount error(13): Permission denied\nRefer to the mount.cifs(8) manual page (e.g. man mount.cifs) and kernel log messages (dmesg)\n',
      want: {
        kind: 'permanent',
        reason: 'share-auth-failed',
        message: /Kerberos authentication failed/,
        fix: /machine is joined \(klist -k\).*storage account is joined to the same AD.*clock/,
      },
    },
    {
      name: 'Kerberos: no usable ticket or keytab entry (cifs.upcall)',
      mode: 'smb-kerberos',
      output:
        'mount error(126): Required key not available\nRefer to the mount.cifs(8) manual page (e.g. man mount.cifs) and kernel log messages (dmesg)\n',
      want: { kind: 'permanent', reason: 'share-auth-failed', message: /error\(126\).*Kerberos authentication failed/, fix: /klist -k/ },
    },
    {
      name: 'key: refused',
      mode: 'smb-key',
      output: 'mount error(13): Permission denied\n',
      want: { kind: 'permanent', reason: 'share-auth-failed', message: /refused the key/, fix: /current key1\/key2/ },
    },
    {
      name: 'key: 126 is not a Kerberos failure there',
      mode: 'smb-key',
      output: 'mount error(126): Required key not available\n',
      want: { kind: 'transient', reason: 'share-mount-failed' },
    },
  ];
  for (const c of cases) t.match(mountFailure(c.output, where(c.mode)), c.want, c.name);
});
