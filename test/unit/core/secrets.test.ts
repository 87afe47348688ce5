import t from 'tap';
import { chmod, chown, mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { readSecret, readSecretFile } from '../../../src/agent/secrets.js';
import { makeTestContext } from '../../helpers/context.js';

// Without root a test cannot make root-owned files: the cases that need the
// file's owner to be right ask for the test's own uid as the owner. The
// owner rule itself runs either way: as root on a file given to nobody
// (65534), otherwise on a file the test user owns, both against the default
// owner, root.
const me = process.getuid?.() ?? 0;
const asRoot = me === 0;

async function secretDir() {
  const { paths } = await makeTestContext();
  const dir = paths.under('/etc/dsvm-agent');
  await mkdir(dir, { recursive: true });
  const write = async (name: string, content: string, mode = 0o600) => {
    const f = path.join(dir, name);
    await writeFile(f, content);
    await chmod(f, mode);
    return f;
  };
  return { paths, dir, write };
}

async function outcome(
  p: () => Promise<string>,
): Promise<{ value?: string; error?: Error & { fix?: string; kind?: string; reason?: string } }> {
  try {
    return { value: await p() };
  } catch (err) {
    return { error: err as Error & { fix?: string; kind?: string; reason?: string } };
  }
}

t.test('secret file rules', async (t) => {
  const { paths, dir, write } = await secretDir();
  await write('good', 'pa55word-value\n');
  await write('crlf', 'pa55word-value\r\n');
  await write('no-newline', 'pa55word-value');
  await write('blank-lines', 'pa55word-value\n\n\n');
  await write('spaces', ' pa55 word \n');
  await write('group-readable', 'x-secret', 0o640);
  await write('group-writable', 'x-secret', 0o620);
  await write('world-readable', 'x-secret', 0o604);
  await write('empty', '');
  await write('whitespace', '  \n');
  await write('two-lines', 'x-secret\nusername=other\n');
  await symlink(path.join(dir, 'good'), path.join(dir, 'link'));
  await mkdir(path.join(dir, 'adir'));

  const cases: { name: string; file: string; value?: string; error?: RegExp; reason?: string }[] = [
    { name: 'a 0600 file is read, trailing newline dropped', file: 'good', value: 'pa55word-value' },
    { name: 'a CRLF line ending is dropped too', file: 'crlf', value: 'pa55word-value' },
    { name: 'no newline at all', file: 'no-newline', value: 'pa55word-value' },
    { name: 'blank lines at the end are dropped', file: 'blank-lines', value: 'pa55word-value' },
    { name: 'spaces are part of the secret', file: 'spaces', value: ' pa55 word ' },
    {
      name: 'group-readable refused',
      file: 'group-readable',
      error: /mode 0640, readable or writable by group or others.*chmod 0600 \/etc\/dsvm-agent\/group-readable/s,
      reason: 'secret-insecure',
    },
    { name: 'group-writable refused', file: 'group-writable', error: /mode 0620.*chmod 0600/s, reason: 'secret-insecure' },
    { name: 'world-readable refused', file: 'world-readable', error: /mode 0604.*chmod 0600/s, reason: 'secret-insecure' },
    {
      name: 'missing',
      file: 'missing',
      error: /secret file \/etc\/dsvm-agent\/missing does not exist.*write it \(owned by root, mode 0600\)/s,
      reason: 'secret-missing',
    },
    {
      name: 'empty',
      file: 'empty',
      error: /secret file \/etc\/dsvm-agent\/empty is empty.*write the secret into it/s,
      reason: 'secret-empty',
    },
    { name: 'whitespace only', file: 'whitespace', error: /is empty \(only whitespace\)/, reason: 'secret-empty' },
    { name: 'two lines refused', file: 'two-lines', error: /holds more than one line.*one line/s, reason: 'secret-malformed' },
    { name: 'symlink refused', file: 'link', error: /is a symbolic link.*the real file/s, reason: 'secret-insecure' },
    { name: 'directory refused', file: 'adir', error: /is not a regular file/, reason: 'secret-insecure' },
  ];
  for (const c of cases) {
    const r = await outcome(() => readSecretFile(`/etc/dsvm-agent/${c.file}`, 'domain.joinPassword', paths, { ownerUid: me }));
    if (c.value !== undefined) {
      t.equal(r.value, c.value, c.name);
      t.notOk(r.error, `${c.name}: no error (${r.error?.message})`);
      continue;
    }
    if (!t.ok(r.error, `${c.name}: refused`)) continue;
    t.match(`${r.error!.message} fix: ${r.error!.fix ?? ''}`, c.error!, c.name);
    t.match(r.error!.message, /^domain\.joinPassword: /, `${c.name}: names the key`);
    t.equal(r.error!.kind, 'permanent', `${c.name}: permanent`);
    t.equal(r.error!.reason, c.reason, `${c.name}: reason`);
    t.notMatch(`${r.error!.message} ${r.error!.fix ?? ''}`, /x-secret|pa55/, `${c.name}: the secret is not in the message`);
  }
});

t.test('a secret file not owned by root is refused, with the fix', async (t) => {
  const { paths, write } = await secretDir();
  const f = await write('not-root', 'x-secret\n');
  const owner = asRoot ? 65534 : me;
  if (asRoot) await chown(f, owner, owner);
  const r = await outcome(() => readSecretFile('/etc/dsvm-agent/not-root', 'share.key', paths));
  if (!t.ok(r.error, 'refused')) return;
  t.equal(r.error!.message, `share.key: secret file /etc/dsvm-agent/not-root is owned by uid ${owner}, not root`);
  t.equal(
    r.error!.fix,
    'chown root:root /etc/dsvm-agent/not-root && chmod 0600 /etc/dsvm-agent/not-root, and rotate the secret: its owner could read or replace it',
  );
  t.equal(r.error!.reason, 'secret-insecure');
});

t.test('readSecret, the door tasks and the daemon read through, requires root unless a test names the owner', async (t) => {
  const { ctx } = await makeTestContext();
  const { paths, write } = await secretDir();
  const f = await write('key', 'x-secret\n');
  const owner = asRoot ? 65534 : me;
  if (asRoot) await chown(f, owner, owner);
  const ref = { file: '/etc/dsvm-agent/key' };
  const deps = { cfg: ctx.cfg, paths, log: ctx.log, redactor: ctx.redactor };
  const r = await outcome(() => readSecret(ref, 'share.key', deps));
  t.match(r.error, { reason: 'secret-insecure', message: `secret file ${ref.file} is owned by uid ${owner}, not root` }, 'root by default');
  t.equal(await readSecret(ref, 'share.key', { ...deps, secretFileOwnerUid: owner }), 'x-secret', 'the owner a test names');
});

t.test('the owner is root unless a test says otherwise', { skip: asRoot ? false : 'needs root to make a root-owned file' }, async (t) => {
  const { paths, write } = await secretDir();
  const f = await write('root-owned', 'pa55word-value\n');
  await chown(f, 0, 0);
  t.equal(await readSecretFile('/etc/dsvm-agent/root-owned', 'domain.joinPassword', paths), 'pa55word-value');
  const r = await outcome(() => readSecretFile('/etc/dsvm-agent/root-owned', 'domain.joinPassword', paths, { ownerUid: 1000 }));
  t.match(r.error?.message, /owned by uid 0, not uid 1000/);
});
