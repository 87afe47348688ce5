import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { mergeOptions, mountOptions, parseKernelRelease, shareMode, smbDialect } from '../../../src/tasks/share-mount/options.js';
import { escapeUnitPath, renderUnits, unitNames } from '../../../src/tasks/share-mount/units.js';
import { mountSource } from '../../../src/tasks/share-mount/endpoint.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const goldenDir = path.join(here, '../../fixtures/share-mount/golden');
// UPDATE_GOLDEN=1 rewrites the files; review the diff before keeping it.
const update = process.env.UPDATE_GOLDEN === '1';

const share = {
  type: 'smb' as 'smb' | 'nfs',
  auth: 'key' as 'key' | 'kerberos',
  account: 'contosofiles',
  name: 'workspace',
  endpointSuffix: 'core.windows.net',
  host: undefined,
  filesEndpoint: undefined,
  mountPoint: '/data/workspace',
  dirMode: '0775',
  fileMode: '0664',
  options: [] as string[],
};
const cred = '/etc/smbcredentials/contosofiles.cred';
const modern = parseKernelRelease('6.1.0-18-cloud-amd64');

const cases = [
  { name: 'smb-key-default', share, kernel: modern, uid: 0, gid: 0 },
  { name: 'smb-key-group-0770', share: { ...share, dirMode: '770', fileMode: '0660' }, kernel: modern, uid: 0, gid: 1999 },
  { name: 'smb-key-old-kernel', share, kernel: parseKernelRelease('4.15.0-1113-azure'), uid: 0, gid: 0 },
  { name: 'smb-key-user-options', share: { ...share, options: ['vers=3.0', 'nobrl', 'actimeo=60'] }, kernel: modern, uid: 1000, gid: 1000 },
  { name: 'smb-kerberos', share: { ...share, auth: 'kerberos' as const }, kernel: modern, uid: 0, gid: 0, machine: 'DSVM-0001$' },
  { name: 'smb-kerberos-no-machine', share: { ...share, auth: 'kerberos' as const }, kernel: modern, uid: 0, gid: 0 },
  { name: 'nfs', share: { ...share, type: 'nfs' as const }, kernel: modern, uid: 0, gid: 0 },
  { name: 'nfs-old-kernel', share: { ...share, type: 'nfs' as const }, kernel: parseKernelRelease('5.4.0-1109-azure'), uid: 0, gid: 0 },
  { name: 'custom-mount-point', share: { ...share, mountPoint: '/srv/team-data/work space' }, kernel: modern, uid: 0, gid: 0 },
];

t.test('units per mode match the golden files', async (t) => {
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const options = mountOptions({
        share: c.share,
        kernel: c.kernel,
        uid: c.uid,
        gid: c.gid,
        credentialsFile: cred,
        machineAccount: c.machine,
      });
      const units = renderUnits({ share: c.share, mode: shareMode(c.share), source: mountSource(c.share), options });
      const dir = path.join(goldenDir, c.name);
      if (update) await mkdir(dir, { recursive: true });
      for (const [name, content] of Object.entries(units.files)) {
        const file = path.join(dir, name);
        if (update) await writeFile(file, content);
        t.equal(content, await readFile(file, 'utf8'), `${c.name}/${name}`);
        // The rule that matters most: no key, no password setting, in any unit.
        t.notMatch(content, /password|pass=|\bkey\b=/i, 'no secret setting in the unit');
      }
      t.equal(units.entry, c.share.auth === 'kerberos' ? units.automount : units.mount, 'entry unit');
    });
  }
});

t.test('option rules', async (t) => {
  const opts = (s: typeof share, k = modern) => mountOptions({ share: s, kernel: k, uid: 0, gid: 0, credentialsFile: cred });
  const cases = [
    {
      name: 'key mode: Microsoft options and non-blocking boot',
      got: opts(share),
      has: [
        'vers=3.1.1',
        `credentials=${cred}`,
        'serverino',
        'nosharesock',
        'actimeo=30',
        'mfsymlinks',
        '_netdev',
        'nofail',
        'dir_mode=0775',
        'file_mode=0664',
      ],
      hasNot: ['dir_mode=0777', 'file_mode=0777'],
    },
    { name: 'kernel 4.15 gets SMB 3.0', got: opts(share, parseKernelRelease('4.15.0')), has: ['vers=3.0'], hasNot: ['vers=3.1.1'] },
    { name: 'kernel 4.17 gets SMB 3.1.1', got: opts(share, parseKernelRelease('4.17.1')), has: ['vers=3.1.1'], hasNot: [] },
    {
      name: 'kerberos: multiuser, no key file, no forced owner',
      got: opts({ ...share, auth: 'kerberos' }),
      has: ['sec=krb5', 'multiuser', 'cruid=0', '_netdev', 'nofail'],
      hasNot: [`credentials=${cred}`, 'uid=0', 'gid=0'],
    },
    {
      name: 'nfs 4.1 on a recent kernel',
      got: opts({ ...share, type: 'nfs' }),
      has: ['vers=4', 'minorversion=1', 'sec=sys', 'nconnect=4', '_netdev', 'nofail'],
      hasNot: ['noresvport', `credentials=${cred}`, 'mfsymlinks'],
    },
    {
      name: 'nfs on 5.4: noresvport',
      got: opts({ ...share, type: 'nfs' }, parseKernelRelease('5.4.0')),
      has: ['noresvport', 'nconnect=4'],
      hasNot: [],
    },
    {
      name: 'nfs on 4.19: no nconnect',
      got: opts({ ...share, type: 'nfs' }, parseKernelRelease('4.19.0')),
      has: ['noresvport'],
      hasNot: ['nconnect=4'],
    },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      for (const o of c.has) t.ok(c.got.includes(o), `has ${o}`);
      for (const o of c.hasNot) t.notOk(c.got.includes(o), `has not ${o}`);
    });
  }
  t.equal(smbDialect(parseKernelRelease('garbage')), '3.1.1', 'unreadable release is taken as recent');
  t.same(
    mergeOptions(['vers=3.1.1', 'actimeo=30'], ['vers=3.0', 'nobrl']),
    ['vers=3.0', 'actimeo=30', 'nobrl'],
    'user options replace by key',
  );
  t.throws(() => mergeOptions([], ['uid=a,b']), { name: 'AgentError', kind: 'config' }, 'a comma would inject options');
  t.throws(() => mergeOptions([], ['x=%h']), { name: 'AgentError', kind: 'config' }, 'a % would be a systemd specifier');
});

t.test('unit names follow systemd-escape --path', async (t) => {
  const cases = [
    { name: 'default', path: '/data/workspace', want: 'data-workspace' },
    { name: 'trailing and double slashes', path: '//data//workspace/', want: 'data-workspace' },
    { name: 'dash escaped', path: '/srv/team-data', want: 'srv-team\\x2ddata' },
    { name: 'space escaped', path: '/srv/work space', want: 'srv-work\\x20space' },
    { name: 'leading dot escaped, inner dot kept', path: '/.hidden/a.b', want: '\\x2ehidden-a.b' },
    { name: 'non-ASCII escaped by byte', path: '/données', want: 'donn\\xc3\\xa9es' },
  ];
  const real = existsSync('/usr/bin/systemd-escape');
  for (const c of cases) {
    t.equal(escapeUnitPath(c.path), c.want, c.name);
    // The real tool, where installed, is the reference.
    if (real)
      t.equal(execFileSync('systemd-escape', ['--path', c.path], { encoding: 'utf8' }).trim(), c.want, `${c.name}: systemd-escape agrees`);
  }
  t.same(unitNames('/data/workspace'), { mount: 'data-workspace.mount', automount: 'data-workspace.automount' });
  t.throws(() => escapeUnitPath('data'), { name: 'AgentError', kind: 'config' });
  t.throws(() => escapeUnitPath('/data/../etc'), { name: 'AgentError', kind: 'config' });
  // "-.mount" is the root file system's own unit: a share is never mounted there.
  t.throws(() => escapeUnitPath('/'), { name: 'AgentError', kind: 'config' });
});

t.test(
  'systemd-analyze verify accepts every rendered unit',
  { skip: existsSync('/usr/bin/systemd-analyze') ? false : 'systemd-analyze not installed' },
  async (t) => {
    const { mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { spawnSync } = await import('node:child_process');
    for (const c of cases) {
      const dir = await mkdtemp(path.join(tmpdir(), 'share-units-'));
      const options = mountOptions({
        share: c.share,
        kernel: c.kernel,
        uid: c.uid,
        gid: c.gid,
        credentialsFile: cred,
        machineAccount: c.machine,
      });
      const units = renderUnits({ share: c.share, mode: shareMode(c.share), source: mountSource(c.share), options });
      const files = [];
      for (const [name, content] of Object.entries(units.files)) {
        await writeFile(path.join(dir, name), content);
        files.push(path.join(dir, name));
      }
      const r = spawnSync('systemd-analyze', ['verify', '--man=no', ...files], { encoding: 'utf8' });
      t.equal(r.status, 0, `${c.name}: exit 0 (${r.stderr.trim()})`);
      t.notMatch(r.stderr, /Unknown key|Refusing|bad unit|Failed to parse/i, `${c.name}: no complaint`);
      await rm(dir, { recursive: true, force: true });
    }
  },
);
