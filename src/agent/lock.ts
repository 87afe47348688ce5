import { mkdir, open, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { notReady } from './errors.js';

/**
 * An exclusive pid lock file: `provision` from cloud-init and the daemon's
 * background first boot must never run the same tasks at once. A lock whose
 * owner is dead is stale and taken over.
 */
export async function acquireLock(file: string, what: string): Promise<() => Promise<void>> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const h = await open(file, 'wx', 0o644);
      await h.writeFile(`${process.pid}\n`);
      await h.close();
      return async () => {
        await rm(file, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
        throw notReady(`${what} is already running (pid ${pid})`, {
          fix: 'wait for it to finish; `dsvm-agent status` shows progress',
          reason: 'locked',
        });
      }
      await rm(file, { force: true });
    }
  }
  throw notReady(`${what}: could not take the lock ${file}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
