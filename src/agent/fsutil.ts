import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';

export interface WriteOptions {
  mode?: number;
  uid?: number;
  gid?: number;
}

/**
 * O_EXCL makes open(2) fail on any existing name, a symlink included (even a
 * dangling one), so a name someone planted is never written through;
 * O_NOFOLLOW says the same once more in case a flag is ever dropped.
 */
const CREATE_NEW = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
/** Fresh names tried before giving up: a collision of 96 random bits means someone fills the directory on purpose. */
const TEMP_ATTEMPTS = 8;

/** The hidden temp name next to `file`: unpredictable, so nobody can plant anything there in advance. */
function tempName(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(12).toString('hex')}.tmp`);
}

/** Create a new temp file next to `file` with O_EXCL|O_NOFOLLOW, retrying on a name that exists. */
async function createTemp(file: string, mode: number, name: (file: string) => string): Promise<{ tmp: string; handle: FileHandle }> {
  for (let attempt = 1; ; attempt++) {
    const tmp = name(file);
    try {
      return { tmp, handle: await open(tmp, CREATE_NEW, mode) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= TEMP_ATTEMPTS) throw err;
    }
  }
}

/**
 * The one way the agent (root) writes a file: a new temp file in the same
 * directory (random name, O_EXCL|O_NOFOLLOW), fsync, rename over the
 * target, fsync the directory. Readers see the old or the new content,
 * never half; nothing planted in the directory (a symlink at a guessed temp
 * name) is ever followed, and rename(2) replaces a symlink at the target
 * itself rather than writing where it points. A failure removes the temp
 * file. `tempNames` exists for tests that plant files at the names it will
 * try.
 */
export async function writeFileAtomic(
  file: string,
  content: string | Buffer,
  opts: WriteOptions = {},
  tempNames: (file: string) => string = tempName,
): Promise<void> {
  const dir = path.dirname(file);
  await mkdir(dir, { recursive: true });
  const mode = opts.mode ?? 0o644;
  // Created with the final mode so a secret is never briefly world-readable.
  const { tmp, handle } = await createTemp(file, mode, tempNames);
  try {
    await handle.writeFile(content);
    await handle.chmod(mode);
    if (opts.uid !== undefined || opts.gid !== undefined) await handle.chown(opts.uid ?? -1, opts.gid ?? -1);
    await handle.sync();
  } catch (err) {
    await handle.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  try {
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  const dirHandle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}

/** Current content of a file, or undefined when it does not exist. */
export async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Write only when the content differs; returns whether it wrote. */
export async function writeIfChanged(file: string, content: string, opts: WriteOptions = {}): Promise<boolean> {
  const current = await readIfExists(file);
  if (current === content) {
    if (opts.mode !== undefined || opts.uid !== undefined || opts.gid !== undefined) {
      // Through a handle opened without following a symlink: chmod(2)/chown(2) on the name would follow one.
      const handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
      try {
        if (opts.mode !== undefined) await handle.chmod(opts.mode);
        if (opts.uid !== undefined || opts.gid !== undefined) await handle.chown(opts.uid ?? -1, opts.gid ?? -1);
      } finally {
        await handle.close();
      }
    }
    return false;
  }
  await writeFileAtomic(file, content, opts);
  return true;
}

/**
 * Agent-owned lines in a shared system file sit between these markers, so a
 * re-run replaces them and deprovision removes them without touching the rest.
 */
export const BLOCK_BEGIN = '# BEGIN dsvm-agent (managed block: edits here are overwritten)';
export const BLOCK_END = '# END dsvm-agent';

/** Replace (or append, or with `block === undefined` remove) the marked block in `text`. */
export function setMarkedBlock(text: string, block: string | undefined): string {
  const lines = text.split('\n');
  const begin = lines.indexOf(BLOCK_BEGIN);
  const end = begin >= 0 ? lines.indexOf(BLOCK_END, begin) : -1;
  let before = lines;
  let after: string[] = [];
  if (begin >= 0 && end > begin) {
    before = lines.slice(0, begin);
    after = lines.slice(end + 1);
  }
  const body = block === undefined ? [] : [BLOCK_BEGIN, ...block.replace(/\n$/, '').split('\n'), BLOCK_END];
  let head = before.join('\n');
  if (body.length > 0 && begin < 0) {
    // Appending: keep exactly one newline between the file and the block.
    head = head.replace(/\n*$/, '');
    return (head === '' ? '' : head + '\n') + body.join('\n') + '\n';
  }
  const out = [...before, ...body, ...after].join('\n');
  return out;
}

/** The marked block's content, or undefined when absent. */
export function getMarkedBlock(text: string): string | undefined {
  const lines = text.split('\n');
  const begin = lines.indexOf(BLOCK_BEGIN);
  const end = begin >= 0 ? lines.indexOf(BLOCK_END, begin) : -1;
  if (begin < 0 || end < begin) return undefined;
  return lines.slice(begin + 1, end).join('\n') + '\n';
}
