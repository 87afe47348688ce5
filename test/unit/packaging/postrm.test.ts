// `dpkg --purge` runs postrm against a temporary tree (DPKG_ROOT): it removes
// every credentials file the agent wrote, found from what the agent itself
// leaves (its mount units, its state, its config), and nothing of anyone else.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { validateConfig } from '../../../src/agent/config.js';
import { emptyState } from '../../../src/agent/state.js';
import { renderUnits } from '../../../src/tasks/share-mount/units.js';

const POSTRM = 'packaging/deb/maintscripts/postrm';

interface Tree {
  /** Accounts with an agent mount unit naming their credentials file. */
  units?: string[];
  /** The account the state's last provisioned config names. */
  state?: string;
  /** The account in config.yaml, and how it is written. */
  config?: { account: string; style: 'block' | 'flow' };
  /** Credentials files present (account names). */
  creds: string[];
}

const config = (account: string) => ({
  domain: { name: 'contoso.test', joinUser: 'j', joinPassword: { file: '/etc/dsvm-agent/p' } },
  share: { account, name: 'workspace', mountPoint: `/data/${account}`, key: { file: '/etc/dsvm-agent/k' } },
});

async function tree(x: Tree): Promise<string> {
  const root = await mkdtemp(path.join(tmpdir(), 'dsvm-postrm-'));
  const put = async (file: string, content: string, mode = 0o644): Promise<void> => {
    await mkdir(path.dirname(path.join(root, file)), { recursive: true });
    await writeFile(path.join(root, file), content, { mode });
  };
  for (const account of x.units ?? []) {
    const units = renderUnits({
      share: { account, name: 'workspace', mountPoint: `/data/${account}` },
      mode: 'smb-key',
      source: `//${account}.file.core.windows.net/workspace`,
      options: ['vers=3.1.1', `credentials=/etc/smbcredentials/${account}.cred`, 'uid=0', 'gid=0', '_netdev', 'nofail'],
    });
    for (const [name, content] of Object.entries(units.files)) await put(`etc/systemd/system/${name}`, content);
  }
  if (x.state) {
    const state = emptyState('vm-1', 'imds');
    state.facts.appliedConfig = validateConfig(config(x.state), 'test');
    await put('var/lib/dsvm-agent/state.json', JSON.stringify(state, null, 2) + '\n', 0o600);
  }
  if (x.config) {
    const c = config(x.config.account);
    const text =
      x.config.style === 'block'
        ? stringify(c)
        : `domain: ${JSON.stringify(c.domain)}\nshare: { name: workspace, account: ${x.config.account}, key: { file: /etc/dsvm-agent/k } }\n`;
    await put('etc/dsvm-agent/config.yaml', text, 0o600);
  }
  for (const account of x.creds) await put(`etc/smbcredentials/${account}.cred`, `username=${account}\npassword=k\n`, 0o600);
  // Someone else's mount of the same kind: no agent header, its file stays.
  await put(
    'etc/systemd/system/mnt-backup.mount',
    '[Mount]\nWhat=//backupstore.file.core.windows.net/b\nWhere=/mnt/backup\nType=cifs\nOptions=credentials=/etc/smbcredentials/backupstore.cred\n',
  );
  return root;
}

/** Stand-ins for the host tools postrm may call, so the test never touches this machine's systemd. */
async function stubs(): Promise<{ dir: string; log: string }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'dsvm-postrm-bin-'));
  const log = path.join(dir, 'calls.log');
  for (const tool of ['deb-systemd-helper', 'deb-systemd-invoke', 'systemctl']) {
    await writeFile(path.join(dir, tool), `#!/bin/sh\necho "${tool} $*" >>"${log}"\n`);
    await chmod(path.join(dir, tool), 0o755);
  }
  return { dir, log };
}

t.test('postrm honours DPKG_ROOT (else this test would act on the host)', async (t) => {
  t.match(readFileSync(POSTRM, 'utf8'), /DPKG_ROOT/);
});

t.test('purge removes the credentials the agent wrote, and only those', async (t) => {
  if (!/DPKG_ROOT/.test(readFileSync(POSTRM, 'utf8'))) {
    t.fail('postrm ignores DPKG_ROOT: not running it on this host');
    return;
  }
  const cases: { name: string; tree: Tree; action?: string; gone: string[]; kept: string[] }[] = [
    {
      name: 'known from the mount unit only (state and config gone)',
      tree: { units: ['contosofiles'], creds: ['contosofiles', 'backupstore'] },
      gone: ['contosofiles'],
      kept: ['backupstore'],
    },
    {
      name: 'known from the state only (unit removed by hand)',
      tree: { state: 'teamfiles', creds: ['teamfiles', 'backupstore'] },
      gone: ['teamfiles'],
      kept: ['backupstore'],
    },
    {
      name: 'known from a flow-style config only',
      tree: { config: { account: 'flowfiles', style: 'flow' }, creds: ['flowfiles', 'backupstore'] },
      gone: ['flowfiles'],
      kept: ['backupstore'],
    },
    {
      name: 'known from a block-style config only',
      tree: { config: { account: 'blockfiles', style: 'block' }, creds: ['blockfiles'] },
      gone: ['blockfiles'],
      kept: [],
    },
    {
      name: 'the account changed: old unit, new state',
      tree: {
        units: ['oldfiles'],
        state: 'newfiles',
        config: { account: 'newfiles', style: 'block' },
        creds: ['oldfiles', 'newfiles', 'backupstore'],
      },
      gone: ['oldfiles', 'newfiles'],
      kept: ['backupstore'],
    },
    {
      name: 'remove (not purge) keeps everything',
      tree: { units: ['contosofiles'], state: 'contosofiles', creds: ['contosofiles'] },
      action: 'remove',
      gone: [],
      kept: ['contosofiles'],
    },
  ];
  const bin = await stubs();
  for (const c of cases) {
    const root = await tree(c.tree);
    const r = spawnSync('sh', [POSTRM, c.action ?? 'purge'], {
      encoding: 'utf8',
      env: { PATH: `${bin.dir}:/usr/bin:/bin`, DPKG_ROOT: root },
    });
    t.equal(r.status, 0, `${c.name}: exit 0 (${r.stderr})`);
    for (const a of c.gone) t.notOk(existsSync(path.join(root, `etc/smbcredentials/${a}.cred`)), `${c.name}: ${a}.cred removed`);
    for (const a of c.kept) t.ok(existsSync(path.join(root, `etc/smbcredentials/${a}.cred`)), `${c.name}: ${a}.cred kept`);
    const purged = (c.action ?? 'purge') === 'purge';
    t.equal(existsSync(path.join(root, 'var/lib/dsvm-agent')), !purged && c.tree.state !== undefined, `${c.name}: state`);
    t.equal(existsSync(path.join(root, 'etc/dsvm-agent')), !purged && c.tree.config !== undefined, `${c.name}: config`);
    if (purged && c.kept.length === 0)
      t.notOk(existsSync(path.join(root, 'etc/smbcredentials')), `${c.name}: the emptied directory goes too`);
  }
  const calls = await readFile(bin.log, 'utf8').catch(() => '');
  t.notMatch(calls, /^systemctl/m, 'no systemctl call against the host from a DPKG_ROOT run');
});
