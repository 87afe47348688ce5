import { constants } from 'node:fs';
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { execa, type Options } from 'execa';
import { notReady } from './errors.js';

/**
 * The lock every writer of system configuration holds: first boot
 * (`provision`, the daemon's background run), the daemon's repairs,
 * `deprovision` and the scale-in clean-up. It must exclude for real: two
 * joins at once reset the machine password twice, two fstab edits lose one.
 *
 * flock(2) on an empty file that is never written or removed, taken by
 * util-linux's flock(1) on this process's own open descriptor (its fd 3):
 * the lock stays with the description until this process closes it or dies.
 * flock(1) is started with execa directly: the shared runner has no way to
 * hand a child an open descriptor. Why flock and not a pid file:
 * docs/security.md.
 */

/** flock(1)'s exit code when the lock is busy (-E): told apart from its own errors. */
const BUSY_EXIT = 75;
/** How often a waiter says it is still waiting. */
const DEFAULT_PROGRESS_MS = 5000;

export interface LockWait {
  /** How long to wait for a busy lock (0: do not wait, the default). */
  waitMs?: number;
  /** Called about every `progressMs` while waiting. */
  onWait?: (waitedMs: number) => void;
  progressMs?: number;
}

/** Release a held lock. Closing the descriptor is the release: the file stays, so no release removes another's lock. */
export type ReleaseLock = () => Promise<void>;

/** One flock(1) run on fd 3: true when we hold the lock, false when it stayed busy for `waitSec`. */
async function flockOn(handle: FileHandle, waitSec: number): Promise<boolean> {
  const how = waitSec > 0 ? ['--wait', String(waitSec)] : ['--nonblock'];
  // execa hands an integer on as that very descriptor; its types list only 0-2 for it.
  const stdio = ['ignore', 'ignore', 'pipe', handle.fd] as unknown as Options['stdio'];
  const r = await execa('flock', ['--exclusive', ...how, '--conflict-exit-code', String(BUSY_EXIT), '3'], {
    stdio,
    reject: false,
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
    extendEnv: false,
  });
  if (r.exitCode === 0) return true;
  if (r.exitCode === BUSY_EXIT) return false;
  throw new Error(`flock(1) failed (exit ${r.exitCode ?? r.signal}): ${String(r.stderr).trim() || r.message}`);
}

/**
 * Take the exclusive lock `file` for `what` (a few words: "provision",
 * "repair rejoin"). Busy: waits up to `wait.waitMs`, then throws notReady
 * with reason "locked". The lock file stays in place for
 * good: removing it while someone waits on the old inode would let two
 * processes lock two different files.
 */
export async function acquireLock(file: string, what: string, wait: LockWait = {}): Promise<ReleaseLock> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const handle = await open(file, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  try {
    const waitMs = wait.waitMs ?? 0;
    const progressMs = wait.progressMs ?? DEFAULT_PROGRESS_MS;
    const started = Date.now();
    let held = await flockOn(handle, 0);
    while (!held && Date.now() - started < waitMs) {
      wait.onWait?.(Date.now() - started);
      const slice = Math.min(progressMs, waitMs - (Date.now() - started));
      held = await flockOn(handle, Math.max(0.01, slice / 1000));
    }
    if (!held) {
      const waited = waitMs > 0 ? ` (waited ${Math.round(waitMs / 1000)} s)` : '';
      throw notReady(`${what}: another run (first boot, a repair, deprovision) holds the lock ${file}${waited}`, {
        fix: 'wait for it to finish; `dsvm-agent status` shows progress',
        reason: 'locked',
      });
    }
  } catch (err) {
    await handle.close();
    throw err;
  }
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    await handle.close();
  };
}

/** Run `fn` holding the lock; the lock goes whatever `fn` does. */
export async function withLock<T>(file: string, what: string, fn: () => Promise<T>, wait: LockWait = {}): Promise<T> {
  const release = await acquireLock(file, what, wait);
  try {
    return await fn();
  } finally {
    await release();
  }
}
