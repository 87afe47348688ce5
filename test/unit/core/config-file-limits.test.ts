/**
 * What is refused before any YAML rule runs (issue 15, defect 5): a file over
 * 1 MiB (without reading it), bytes that are not UTF-8 (naming the offset),
 * and alias expansion; each through `config check` too, which must exit 2 so
 * systemd's RestartPreventExitStatus=2 stops a restart loop.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import t from 'tap';
import { ConfigInvalid, firstInvalidUtf8, loadConfig } from '../../../src/agent/config.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const ENTRY = ['--import', pathToFileURL(path.join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href, path.join(ROOT, 'src/main.ts')];

const D = 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p } }\n';

let dir: string;
t.before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'dsvm-config-limits-'));
});
t.teardown(() => rm(dir, { recursive: true, force: true }));

async function issuesOfFile(name: string): Promise<{ path: string; message: string }[]> {
  try {
    await loadConfig(path.join(dir, name));
  } catch (err) {
    if (err instanceof ConfigInvalid) return err.issues;
    throw err;
  }
  return [];
}

t.test('firstInvalidUtf8 finds the first bad byte', async (t) => {
  const cases: { name: string; bytes: number[]; want: number }[] = [
    { name: 'ASCII', bytes: [0x61, 0x62], want: -1 },
    { name: 'valid two, three and four byte forms', bytes: [0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80], want: -1 },
    { name: 'Latin-1 e-acute', bytes: [0x61, 0x62, 0xe9, 0x74], want: 2 },
    { name: 'overlong slash', bytes: [0x61, 0xc0, 0xaf], want: 1 },
    { name: 'surrogate', bytes: [0xed, 0xa0, 0x80], want: 0 },
    { name: 'truncated at the end', bytes: [0x61, 0xe2, 0x82], want: 1 },
    { name: 'stray continuation byte', bytes: [0x80], want: 0 },
    { name: 'above U+10FFFF', bytes: [0xf4, 0x90, 0x80, 0x80], want: 0 },
  ];
  for (const c of cases) t.equal(firstInvalidUtf8(Uint8Array.from(c.bytes)), c.want, c.name);
});

t.test('invalid UTF-8 names the byte offset', async (t) => {
  const bytes = Buffer.concat([Buffer.from(`${D}logging: { level: info }\n# caf`), Buffer.from([0xe9]), Buffer.from('\n')]);
  await writeFile(path.join(dir, 'latin1.yaml'), bytes);
  t.same(await issuesOfFile('latin1.yaml'), [
    {
      path: '',
      message: `is not valid UTF-8 at byte ${bytes.indexOf(0xe9)} (0xe9): save the file as UTF-8, e.g. iconv -f latin1 -t utf-8`,
    },
  ]);
});

t.test('a 200 MB file is refused from its size, without reading it', async (t) => {
  const file = path.join(dir, 'huge.yaml');
  const fh = await open(file, 'w');
  await fh.truncate(200 * 1024 * 1024); // sparse: no disk used
  await fh.close();
  const rss = process.memoryUsage().rss;
  const t0 = Date.now();
  const issues = await issuesOfFile('huge.yaml');
  t.same(issues, [
    {
      path: '',
      message:
        'is 209715200 bytes, over the 1048576 byte (1 MiB) limit: a config is a few kilobytes; check that --config names the right file',
    },
  ]);
  t.ok(Date.now() - t0 < 1000, 'at once');
  t.ok(process.memoryUsage().rss - rss < 50 * 1024 * 1024, 'not read into memory');
});

t.test('config check exits 2 for each class', async (t) => {
  const laughs = [
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    ...'bcdefghi'.split('').map((c, i) => `${c}: &${c} [${Array(9).fill(`*${'abcdefghi'[i]}`).join(',')}]`),
    D,
  ].join('\n');
  const cases: { name: string; content: string | Buffer; says: RegExp }[] = [
    { name: 'alias expansion', content: laughs, says: /YAML aliases expand to more than 100 nodes/ },
    { name: 'invalid UTF-8', content: Buffer.concat([Buffer.from(D), Buffer.from([0xff])]), says: /not valid UTF-8 at byte \d+/ },
    { name: 'over 1 MiB', content: `# ${'x'.repeat(1024 * 1024)}\n${D}`, says: /over the 1048576 byte \(1 MiB\) limit/ },
    {
      name: 'group name injection',
      content: `domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p }, allowGroups: ["a\\n[x]"] }`,
      says: /domain\.allowGroups\[0\]: must not contain a newline/,
    },
    {
      name: 'mount point /',
      content: `${D}share: { account: acct1, name: ws1, key: { file: /etc/k }, mountPoint: / }`,
      says: /share\.mountPoint: must not be \/ itself/,
    },
    {
      name: 'metrics on /etc/passwd',
      content: `${D}health: { metricsTextfile: /etc/passwd }`,
      says: /health\.metricsTextfile: must be under/,
    },
    {
      name: 'share mode 0777',
      content: `${D}share: { account: acct1, name: ws1, key: { file: /etc/k }, dirMode: "0777" }`,
      says: /share\.dirMode: must not be world-writable/,
    },
    { name: 'minUid 500', content: `${D}workspace: { minUid: 500 }`, says: /workspace\.minUid: must be at least 1000 / },
  ];
  for (const c of cases) {
    const file = path.join(dir, `check-${c.name.replace(/\W+/g, '-')}.yaml`);
    await writeFile(file, c.content);
    // A process of its own: the exit status is what systemd sees.
    const r = spawnSync(process.execPath, [...ENTRY, 'config', 'check', file], { encoding: 'utf8' });
    t.equal(r.status, 2, `${c.name}: exit 2`);
    t.match(r.stderr, c.says, `${c.name}: says why`);
  }
});
