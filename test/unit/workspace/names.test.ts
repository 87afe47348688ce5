import t from 'tap';
import { checkName, folderNameFor } from '../../../src/tasks/workspace/names.js';

// Each case: an account name and the folder it must map to (or a refusal matching the message).
const cases: { name: string; input: string; folder?: string; refused?: RegExp }[] = [
  { name: 'plain name unchanged', input: 'alice', folder: 'alice' },
  { name: 'dot and upper case folded', input: 'Jean.Dupont', folder: 'jean.dupont' },
  { name: 'fully qualified sssd name keeps @', input: 'alice@contoso.com', folder: 'alice@contoso.com' },
  { name: 'upper-case UPN folded', input: 'ALICE@CONTOSO.COM', folder: 'alice@contoso.com' },
  { name: 'winbind DOMAIN\\user: backslash escaped', input: 'CONTOSO\\alice', folder: 'contoso%5Calice' },
  { name: 'space escaped', input: 'jean dupont', folder: 'jean%20dupont' },
  { name: 'percent escaped so escapes stay reversible', input: 'a%20b', folder: 'a%2520b' },
  { name: 'UTF-8 letters kept (NFC)', input: 'Jose\u0301', folder: 'jos\u00e9' },
  { name: 'CJK letters kept', input: '\u5c71\u7530', folder: '\u5c71\u7530' },
  { name: 'emoji escaped per UTF-8 byte', input: 'a\u{1F600}', folder: 'a%F0%9F%98%80' },
  { name: 'leading dot escaped (no hidden folder)', input: '.alice', folder: '%2Ealice' },
  { name: 'leading dash escaped', input: '-alice', folder: '%2Dalice' },
  { name: 'trailing dot escaped (SMB strips it)', input: 'alice.', folder: 'alice%2E' },
  { name: 'reserved device name escaped', input: 'CON', folder: '%63on' },
  { name: 'reserved name with extension escaped', input: 'nul.txt', folder: '%6Eul.txt' },
  { name: 'colon and quotes escaped', input: 'a:b"c', folder: 'a%3Ab%22c' },
  { name: 'dots inside kept', input: 'a..b', folder: 'a..b' },
  { name: 'empty refused', input: '', refused: /empty/ },
  { name: 'dot refused', input: '.', refused: /"\."/ },
  { name: 'dot-dot refused', input: '..', refused: /"\.\."/ },
  { name: 'slash refused', input: '../x', refused: /"\/"/ },
  { name: 'newline refused', input: 'alice\nroot', refused: /control/ },
  { name: 'NUL refused', input: 'alice\0', refused: /control/ },
  { name: 'DEL refused', input: 'a\u007fb', refused: /control/ },
  { name: 'lone surrogate refused', input: 'a\ud800b', refused: /Unicode/ },
  { name: '300 characters refused', input: 'a'.repeat(300), refused: /300 characters/ },
  { name: '256 characters of escapes too long for a folder', input: ' '.repeat(100), refused: /255 bytes/ },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const r = folderNameFor(c.input);
    if (c.folder !== undefined) {
      t.same(r, { ok: true, folder: c.folder });
    } else {
      t.equal(r.ok, false);
      if (!r.ok) t.match(r.message, c.refused!);
    }
  });
}

t.test('every produced folder is one safe path component', async (t) => {
  for (const c of cases) {
    const r = folderNameFor(c.input);
    if (!r.ok) continue;
    t.notOk(r.folder.includes('/'), c.name);
    t.notOk(r.folder === '.' || r.folder === '..', c.name);
    // eslint-disable-next-line no-control-regex
    t.notOk(/[\u0000-\u001f]/.test(r.folder), c.name);
    t.notOk(/^[.-]/.test(r.folder), c.name);
  }
});

t.test('collision-free: distinct names (modulo case) give distinct folders', async (t) => {
  const names = ['a b', 'a%20b', 'a_b', 'a-b', 'a.b', 'a@b', 'a\\b', '.a', '%2Ea', 'a.', 'a%2E', 'con', '%63on', 'b\u00e9', 'b%C3%A9'];
  const folders = names.map((n) => {
    const r = folderNameFor(n);
    return r.ok ? r.folder : `refused:${n}`;
  });
  t.equal(new Set(folders).size, names.length, folders.join(' '));
});

t.test('checkName accepts what NSS returns for AD users', async (t) => {
  for (const n of ['alice', 'alice@contoso.test', 'CONTOSO\\alice', 'Jean.Dupont', 'jean dupont']) t.equal(checkName(n), undefined, n);
});
