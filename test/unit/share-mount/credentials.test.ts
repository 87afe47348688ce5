import { mkdtemp, readFile, stat, writeFile, chmod, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { makePaths } from '../../../src/agent/paths.js';
import {
  credentialsModeProblem,
  credentialsPath,
  credentialsSystemPath,
  removeCredentials,
  renderCredentials,
  writeCredentials,
} from '../../../src/tasks/share-mount/credentials.js';

const KEY = 'q1W2e3R4t5Y6u7I8o9P0+/aSdFgHjKlZxCvBnM==';

t.test('rendered content', async (t) => {
  const cases = [
    { name: 'base64 key', account: 'contosofiles', key: KEY, want: `username=contosofiles\npassword=${KEY}\n` },
    { name: 'key with = and + kept verbatim', account: 'acct', key: 'ab+/==', want: 'username=acct\npassword=ab+/==\n' },
  ];
  for (const c of cases) t.equal(renderCredentials(c.account, c.key), c.want, c.name);
  const bad = [
    { name: 'newline would start a new setting', key: 'abc\nusername=evil' },
    { name: 'carriage return', key: 'abc\r' },
    { name: 'empty', key: '' },
  ];
  for (const c of bad) {
    t.throws(() => renderCredentials('acct', c.key), { name: 'AgentError', kind: 'permanent', reason: 'share-key-malformed' }, c.name);
    // The error must not carry the value.
    try {
      renderCredentials('acct', c.key);
    } catch (err) {
      if (c.key) t.notMatch((err as Error).message, c.key, `${c.name}: value not in the message`);
    }
  }
});

t.test('written root-only and atomically in a temp root', async (t) => {
  const root = await mkdtemp(path.join(tmpdir(), 'share-cred-'));
  const paths = makePaths(root);
  const file = credentialsPath(paths, 'contosofiles');
  t.equal(file, path.join(root, 'etc/smbcredentials/contosofiles.cred'));
  t.equal(credentialsSystemPath(paths, 'contosofiles'), '/etc/smbcredentials/contosofiles.cred', 'the mount options name the system path');

  await writeCredentials(file, renderCredentials('contosofiles', KEY));
  const st = await stat(file);
  t.equal(st.mode & 0o777, 0o600, 'file 0600');
  t.equal((await stat(path.dirname(file))).mode & 0o777, 0o700, 'directory 0700');
  if (process.getuid?.() === 0) t.equal(st.uid, 0, 'owned by root');
  t.equal(await readFile(file, 'utf8'), `username=contosofiles\npassword=${KEY}\n`);
  t.equal(await credentialsModeProblem(file), undefined);

  // A directory created loosely by someone else is tightened.
  await chmod(path.dirname(file), 0o755);
  await writeCredentials(file, renderCredentials('contosofiles', 'rotated+key=='));
  t.equal((await stat(path.dirname(file))).mode & 0o777, 0o700, 'directory tightened again');
  t.equal(await readFile(file, 'utf8'), 'username=contosofiles\npassword=rotated+key==\n', 'rewritten with the new key');
  t.same(
    (await readdir(path.dirname(file))).filter((f) => f.endsWith('.tmp')),
    [],
    'no temp file left',
  );

  await chmod(file, 0o644);
  t.equal(await credentialsModeProblem(file), 'mode 0644', 'a readable file is reported');

  await writeFile(path.join(path.dirname(file), 'other.cred'), 'x', { mode: 0o600 });
  t.same(await removeCredentials(file), [file]);
  t.ok((await stat(path.dirname(file))).isDirectory(), 'directory kept while another file is in it');
  t.same(await removeCredentials(file), [], 'second removal: nothing');
});
