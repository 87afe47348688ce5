import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { decideMount, parseFindmnt, parseMountinfo } from '../../../src/tasks/share-mount/findmnt.js';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/share-mount');
const ROOT = '/tmp/dsvm-root';
// Fixtures were captured with their test root replaced by @ROOT@ (see test/fixtures/share-mount/README.md).
const load = async (name: string): Promise<string> => (await readFile(path.join(fixtures, name), 'utf8')).split('@ROOT@').join(ROOT);

const smb = { target: `${ROOT}/data/workspace`, source: '//contosofiles.file.core.windows.net/workspace', type: 'smb' as const };
const nfs = {
  target: `${ROOT}/data/workspace`,
  source: 'contosofiles.file.core.windows.net:/contosofiles/workspace',
  type: 'nfs' as const,
};

t.test('decisions from findmnt -J output', async (t) => {
  const cases = [
    { name: 'nothing mounted there (real capture)', file: 'findmnt-not-mounted.json', wanted: smb, state: 'not-mounted' },
    { name: 'a tmpfs is there (real capture): never mount over it', file: 'findmnt-tmpfs.json', wanted: smb, state: 'other' },
    { name: 'our cifs share is there', file: 'findmnt-cifs.json', wanted: smb, state: 'mounted' },
    { name: 'another account is mounted there', file: 'findmnt-cifs-other.json', wanted: smb, state: 'other' },
    { name: 'only the automount trigger', file: 'findmnt-autofs.json', wanted: smb, state: 'automount-armed' },
    { name: 'automount trigger with the share on top', file: 'findmnt-autofs-cifs.json', wanted: smb, state: 'mounted' },
    { name: 'our NFS share', file: 'findmnt-nfs.json', wanted: nfs, state: 'mounted' },
    { name: 'NFS wanted, cifs of the same host there', file: 'findmnt-cifs.json', wanted: nfs, state: 'other' },
    {
      name: 'trailing slash in the wanted target',
      file: 'findmnt-cifs.json',
      wanted: { ...smb, target: `${ROOT}/data/workspace/` },
      state: 'mounted',
    },
  ];
  for (const c of cases) {
    const d = decideMount(parseFindmnt(await load(c.file)), c.wanted);
    t.equal(d.state, c.state, c.name);
  }
  const both = decideMount(parseFindmnt(await load('findmnt-autofs-cifs.json')), smb);
  t.match(both, { state: 'mounted', automount: true });
  const other = decideMount(parseFindmnt(await load('findmnt-tmpfs.json')), smb);
  t.match(other, { state: 'other', entry: { source: 'scratch', fstype: 'tmpfs' } }, 'names what is there');
});

t.test('findmnt tree output (children) is flattened', async (t) => {
  const tree = JSON.stringify({
    filesystems: [
      {
        target: '/',
        source: '/dev/vda',
        fstype: 'ext4',
        options: 'rw',
        children: [{ target: '/data/workspace', source: '//h/s', fstype: 'cifs', options: 'rw' }],
      },
    ],
  });
  t.same(
    parseFindmnt(tree).map((e) => e.target),
    ['/', '/data/workspace'],
  );
});

t.test('decisions from /proc/self/mountinfo', async (t) => {
  const cases = [
    { name: 'not mounted (real capture)', file: 'mountinfo-not-mounted.txt', state: 'not-mounted' },
    { name: 'tmpfs (real capture)', file: 'mountinfo-tmpfs.txt', state: 'other' },
    { name: 'our cifs share', file: 'mountinfo-cifs.txt', state: 'mounted' },
    { name: 'automount trigger', file: 'mountinfo-autofs.txt', state: 'automount-armed' },
  ];
  for (const c of cases) t.equal(decideMount(parseMountinfo(await load(c.file)), smb).state, c.state, c.name);
  const spaced = parseMountinfo('154 127 0:62 / /tmp/fm/data\\040space/workspace rw,relatime - tmpfs tmpfs-ws rw,size=1024k,mode=755\n');
  t.same(
    spaced,
    [{ target: '/tmp/fm/data space/workspace', source: 'tmpfs-ws', fstype: 'tmpfs', options: 'rw,relatime,rw,size=1024k,mode=755' }],
    'octal escapes decoded (real line)',
  );
  t.same(parseMountinfo('garbage\n\n'), [], 'junk lines ignored');
});
