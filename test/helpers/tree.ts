import { createHash } from 'node:crypto';
import { lstat, readFile, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';

/**
 * A digest of everything under root: each entry's relative path, mode,
 * owner, size and content (a link's target). Two equal digests mean a
 * command changed nothing there ("plan writes nothing", "a second
 * deprovision is a no-op").
 */
export async function hashTree(root: string): Promise<string> {
  const h = createHash('sha256');
  const walk = async (dir: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const p = path.join(dir, name);
      const st = await lstat(p);
      h.update(`${path.relative(root, p)} ${st.mode} ${st.uid} ${st.gid} ${st.size}\n`);
      if (st.isDirectory()) await walk(p);
      else if (st.isSymbolicLink()) h.update(await readlink(p));
      else if (st.isFile()) h.update(await readFile(p));
    }
  };
  await walk(root);
  return h.digest('hex');
}
