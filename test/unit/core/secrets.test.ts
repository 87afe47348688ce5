import t from 'tap';
import { chown, chmod, mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { readSecretFile } from '../../../src/agent/secrets.js';
import { makeTestContext } from '../../helpers/context.js';

t.test('secret file rules', { skip: process.getuid?.() !== 0 ? 'needs root to chown test files' : false }, async (t) => {
  const { paths } = await makeTestContext();
  const dir = paths.under('/etc/dsvm-agent');
  await mkdir(dir, { recursive: true });
  const write = async (name: string, content: string, mode: number, uid = 0) => {
    const f = path.join(dir, name);
    await writeFile(f, content);
    await chmod(f, mode);
    await chown(f, uid, 0);
  };
  await write('good', 'pa55word-value\n', 0o600);
  await write('group-readable', 'x-secret', 0o640);
  await write('world-readable', 'x-secret', 0o604);
  await write('not-root', 'x-secret', 0o600, 65534);
  await write('empty', '', 0o600);
  await symlink(path.join(dir, 'good'), path.join(dir, 'link'));
  await mkdir(path.join(dir, 'adir'));
  const cases = [
    { name: 'root 0600 file is read, trailing newline dropped', file: 'good', value: 'pa55word-value' },
    { name: 'group-readable refused', file: 'group-readable', error: /mode 0640.*group or others.*chmod 0600/s },
    { name: 'world-readable refused', file: 'world-readable', error: /mode 0604/ },
    { name: 'not owned by root refused', file: 'not-root', error: /owned by uid 65534, not root.*chown root:root/s },
    { name: 'missing', file: 'missing', error: /does not exist/ },
    { name: 'empty', file: 'empty', error: /is empty/ },
    { name: 'symlink refused', file: 'link', error: /symbolic link/ },
    { name: 'directory refused', file: 'adir', error: /not a regular file/ },
  ];
  for (const c of cases) {
    const p = `/etc/dsvm-agent/${c.file}`;
    try {
      const v = await readSecretFile(p, 'domain.joinPassword', paths);
      t.equal(v, c.value, c.name);
      t.notOk(c.error, `${c.name}: expected an error`);
    } catch (err) {
      const e = err as Error & { fix?: string; kind?: string };
      t.ok(c.error, `${c.name}: unexpected error ${e.message}`);
      if (c.error) t.match(`${e.message} ${e.fix ?? ''}`, c.error, c.name);
      t.match(e.message, /^domain\.joinPassword: /, `${c.name}: names the key`);
      t.equal(e.kind, 'permanent', `${c.name}: permanent`);
    }
  }
});
