import { chmod, mkdir, rm, rmdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { permanent } from '../../agent/errors.js';
import { readIfExists, writeFileAtomic } from '../../agent/fsutil.js';
import type { Paths } from '../../agent/paths.js';

/**
 * The root-only credentials file mount.cifs reads (`credentials=`), the one
 * place the storage key lives on disk: never in argv, the unit, fstab, logs
 * or state. Kept apart from the mount config because keys rotate.
 */

/** Real (prefixed) path of the credentials file for an account. */
export function credentialsPath(paths: Paths, account: string): string {
  return path.join(paths.smbCredentialsDir, `${account}.cred`);
}

/** The same path as the running system sees it (what goes into the mount options). */
export function credentialsSystemPath(paths: Paths, account: string): string {
  return systemPath(paths, credentialsPath(paths, account));
}

/** Strip the test root prefix: `/tmp/x/etc/a` → `/etc/a` (identity on a real VM). */
export function systemPath(paths: Paths, real: string): string {
  return paths.root === '/' ? real : `/${path.relative(paths.root, real)}`;
}

/**
 * mount.cifs and smbclient (-A) both read `username=`/`password=` lines.
 * A key is base64 ([A-Za-z0-9+/=]); a newline in it would start a new
 * setting, so anything else is refused rather than written.
 */
export function renderCredentials(account: string, key: string): string {
  if (/[\r\n\0]/.test(key) || key.length === 0) {
    throw permanent(`share.key: the storage key for ${account} is empty or holds a line break`, {
      fix: 'store the key exactly as Azure shows it (one base64 line)',
      reason: 'share-key-malformed',
    });
  }
  return `username=${account}\npassword=${key}\n`;
}

/** Whether the file on disk already holds exactly this content (compared in memory, never logged). */
export async function credentialsCurrent(file: string, content: string): Promise<boolean> {
  return (await readIfExists(file)) === content;
}

/** Create the 0700 directory and write the 0600 file atomically, owned by root when we are root. */
export async function writeCredentials(file: string, content: string): Promise<void> {
  const dir = path.dirname(file);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // An existing directory keeps its mode through mkdir; make it root-only anyway.
  await chmod(dir, 0o700);
  const owner = process.getuid?.() === 0 ? { uid: 0, gid: 0 } : {};
  await writeFileAtomic(file, content, { mode: 0o600, ...owner });
}

/** Whether the file exists with a mode that leaks it (anything beyond 0600). */
export async function credentialsModeProblem(file: string): Promise<string | undefined> {
  const st = await stat(file).catch(() => undefined);
  if (!st) return undefined;
  if ((st.mode & 0o077) !== 0) return `mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}`;
  if (process.getuid?.() === 0 && st.uid !== 0) return `owner uid ${st.uid}`;
  return undefined;
}

/** Remove the file, and the directory when nothing else is left in it. Returns what was removed. */
export async function removeCredentials(file: string): Promise<string[]> {
  const removed: string[] = [];
  if ((await readIfExists(file)) !== undefined) {
    await rm(file, { force: true });
    removed.push(file);
  }
  await rmdir(path.dirname(file)).catch(() => undefined);
  return removed;
}
