// deprovision for image capture: works with no config at all (the image is
// often captured before cloud-init writes one), falls back to the config the
// agent last provisioned with, and is a no-op the second time.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

function deprovision(root: string): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, ['dist/cli.mjs', '--root', root, 'deprovision'], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
  });
}

t.test('deprovision without a config file', async (t) => {
  const cases = [
    { name: 'nothing there', state: undefined, credentials: false, expect: /config: none/ },
    {
      name: 'config gone, state remembers the share',
      state: {
        version: 1,
        vmId: 'vm-1',
        vmIdSource: 'imds',
        tasks: {},
        facts: {
          appliedConfig: {
            domain: { name: 'contoso.test', joinUser: 'j', joinPassword: { file: '/etc/dsvm-agent/p' } },
            share: { account: 'contosofiles', name: 'workspace', key: { file: '/etc/dsvm-agent/k' } },
          },
        },
      },
      credentials: true,
      expect: /config: the last provisioned config[\s\S]*removed credentials \/etc\/smbcredentials\/contosofiles\.cred/,
    },
  ];
  for (const c of cases) {
    const root = await mkdtemp(path.join(tmpdir(), 'dsvm-deprov-'));
    if (c.state) {
      await mkdir(path.join(root, 'var/lib/dsvm-agent'), { recursive: true });
      await writeFile(path.join(root, 'var/lib/dsvm-agent/state.json'), JSON.stringify(c.state));
    }
    if (c.credentials) {
      await mkdir(path.join(root, 'etc/smbcredentials'), { recursive: true, mode: 0o700 });
      await writeFile(path.join(root, 'etc/smbcredentials/contosofiles.cred'), 'username=contosofiles\npassword=x\n', { mode: 0o600 });
    }
    const first = deprovision(root);
    t.equal(first.status, 0, `${c.name}: exit 0 (${first.stderr})`);
    t.match(first.stdout, c.expect, `${c.name}: output`);
    t.notOk(existsSync(path.join(root, 'var/lib/dsvm-agent')), `${c.name}: state removed`);
    t.notOk(existsSync(path.join(root, 'etc/smbcredentials/contosofiles.cred')), `${c.name}: no credentials left`);
    const second = deprovision(root);
    t.equal(second.status, 0, `${c.name}: second run exit 0`);
    t.notMatch(second.stdout, /removed (credentials|unit|keytab)/, `${c.name}: second run removes nothing`);
  }
});
