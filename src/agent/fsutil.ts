import { randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';

export interface WriteOptions {
  mode?: number;
  uid?: number;
  gid?: number;
}

/**
 * Write a file atomically: temp file in the same directory, fsync, rename,
 * fsync the directory. Readers see the old or the new content, never half;
 * a crash leaves at most a stray temp file, which is removed on error.
 */
export async function writeFileAtomic(file: string, content: string | Buffer, opts: WriteOptions = {}): Promise<void> {
  const dir = path.dirname(file);
  await mkdir(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const mode = opts.mode ?? 0o644;
  // Create with the final mode so a secret is never briefly world-readable.
  const handle = await open(tmp, 'wx', mode);
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
  const dirHandle = await open(dir, 'r');
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
    if (opts.mode !== undefined) await chmod(file, opts.mode);
    if (opts.uid !== undefined || opts.gid !== undefined) await chown(file, opts.uid ?? -1, opts.gid ?? -1);
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
