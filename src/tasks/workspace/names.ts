/**
 * From an account name to the name of its folder on the share, the same on
 * every VM of a pool: a name NSS could not return or a path could not hold is
 * refused, never "cleaned"; the rest is NFC and lower case, with every
 * character but a-z 0-9 . _ - @ and non-ASCII letters and digits escaped as
 * %XX per UTF-8 byte (reversible), and what SMB would change or refuse
 * escaped too. The rules and examples: docs/login.md (The folder name on the
 * share).
 */

/** Why a name is refused; the message says what is wrong with it. */
export interface NameRefusal {
  ok: false;
  reason: 'bad-name';
  message: string;
}

const MAX_NAME_LENGTH = 256;
/** A path component is at most 255 bytes (NAME_MAX; Azure Files allows 255 characters). */
const MAX_FOLDER_BYTES = 255;
const RESERVED = /^(con|prn|aux|nul|clock\$|com[0-9]|lpt[0-9])(\..*)?$/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/u;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Check a raw name (PAM_USER, --user, an NSS answer) before it is used anywhere. */
export function checkName(name: string): NameRefusal | undefined {
  const refuse = (message: string): NameRefusal => ({ ok: false, reason: 'bad-name', message });
  if (name.length === 0) return refuse('the user name is empty');
  if (name.length > MAX_NAME_LENGTH) return refuse(`the user name is ${name.length} characters long (at most ${MAX_NAME_LENGTH})`);
  if (CONTROL.test(name)) return refuse('the user name contains a control character (NUL, newline, ...)');
  if (name.includes('/')) return refuse('the user name contains "/"');
  if (name === '.' || name === '..') return refuse(`the user name is "${name}"`);
  if (LONE_SURROGATE.test(name)) return refuse('the user name is not valid Unicode');
  return undefined;
}

function escapeChar(ch: string): string {
  return [...Buffer.from(ch, 'utf8')].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('');
}

function keep(ch: string): boolean {
  if (/^[a-z0-9._@-]$/.test(ch)) return true;
  return ch.codePointAt(0)! > 0x7f && /^[\p{L}\p{N}]$/u.test(ch);
}

/**
 * The folder name on the share for a canonical account name, or a refusal.
 * Pure and deterministic: every VM of a pool derives the same folder.
 */
export function folderNameFor(accountName: string): { ok: true; folder: string } | NameRefusal {
  const bad = checkName(accountName);
  if (bad) return bad;
  const folded = accountName.normalize('NFC').toLowerCase();
  const chars = [...folded];
  let out = chars.map((ch) => (keep(ch) ? ch : escapeChar(ch)));
  const first = chars[0]!;
  if (first === '.' || first === '-' || RESERVED.test(folded)) out = [escapeChar(first), ...out.slice(1)];
  if (chars.length > 1 && chars[chars.length - 1] === '.') out = [...out.slice(0, -1), escapeChar('.')];
  const folder = out.join('');
  if (Buffer.byteLength(folder, 'utf8') > MAX_FOLDER_BYTES) {
    return { ok: false, reason: 'bad-name', message: `the folder name for this user would be longer than ${MAX_FOLDER_BYTES} bytes` };
  }
  return { ok: true, folder };
}
