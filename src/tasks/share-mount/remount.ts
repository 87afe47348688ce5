import { AgentError, messageOf, permanent } from '../../agent/errors.js';
import type { Logger } from '../../agent/log.js';
import type { TaskContext } from '../../agent/task.js';
import { writeCredentials } from './credentials.js';
import type { DesiredShare } from './desired.js';
import { keySource, keySourceFix, type AzureHttpOptions } from './key.js';
import { decide, mountNow, readMountTable, unmountNow } from './mount.js';
import { verifyShareKey } from './rest.js';

/*
 * A new storage key must never take a working share down. It is checked
 * over Files REST before the credentials file or the mount is touched; when
 * the SMB mount still refuses a key REST accepted (or REST could not be
 * reached), the previous credentials file is put back and the share mounted
 * with it. Both the task (key rotation) and the daemon's repair use this.
 */

/**
 * Ask Files REST whether the new key works. A refusal names where the key
 * came from and how to fix it there; nothing has been changed by then.
 * Returns a warning when REST could not tell (the mount will).
 */
export async function verifyNewKey(ctx: TaskContext, d: DesiredShare, opts: AzureHttpOptions): Promise<string | undefined> {
  try {
    return await verifyShareKey(ctx, opts);
  } catch (err) {
    if (!(err instanceof AgentError) || err.reason !== 'share-auth-failed') throw err;
    throw permanent(
      `share: the storage account refused the new key from ${keySource(d.share.key, d.share.account)} (403 AuthenticationFailed); ${d.credentialsSystemFile} and the share at ${d.mountPoint} were left as they were, with the previous key`,
      { fix: `${keySourceFix(d.share.key, d.share.account)}, then run dsvm-agent provision`, reason: 'share-auth-failed', cause: err },
    );
  }
}

/** Whether our share is mounted at the mount point now. */
export async function shareMounted(ctx: TaskContext, d: DesiredShare): Promise<boolean> {
  return decide(await readMountTable(ctx), d).state === 'mounted';
}

/**
 * Mount. When that fails and `previous` holds the credentials file the share
 * was mounted with before, that file is restored and the share mounted with
 * it; the failure is still thrown, saying so, since the new key is not in use.
 */
export async function mountOrRestore(ctx: TaskContext, d: DesiredShare, previous: string | undefined): Promise<void> {
  try {
    await mountNow(ctx, d);
    return;
  } catch (err) {
    if (previous === undefined) throw err;
    const failed = err instanceof AgentError ? err : permanent(messageOf(err));
    const source = keySource(d.share.key, d.share.account);
    await writeCredentials(d.credentialsFile, previous);
    try {
      await mountNow(ctx, d);
    } catch (again) {
      throw new AgentError(
        failed.kind,
        `${failed.message}; ${d.credentialsSystemFile} was restored, but mounting with the previous key failed too: ${messageOf(again)}`,
        { fix: failed.fix, reason: failed.reason, cause: err },
      );
    }
    throw new AgentError(
      failed.kind,
      `${failed.message}; ${d.credentialsSystemFile} was restored and ${d.mountPoint} mounted again with the previous key, so the new key from ${source} is not in use`,
      {
        fix:
          failed.reason === 'share-auth-failed'
            ? `${keySourceFix(d.share.key, d.share.account)}, then run dsvm-agent provision`
            : failed.fix,
        reason: failed.reason,
        cause: err,
      },
    );
  }
}

/**
 * The task's remount for a new key or new options. A busy share is not
 * forced: the running SMB session keeps working with the key it
 * authenticated with, and the new files apply at the next remount or boot.
 * `previous` is the credentials file before a key change (undefined when
 * only the options changed).
 */
export async function remountForChange(ctx: TaskContext, d: DesiredShare, previous: string | undefined, log: Logger): Promise<void> {
  try {
    await unmountNow(ctx, d, { lazy: false });
  } catch (err) {
    log.warn(`could not remount ${d.mountPoint} now (${messageOf(err)}); the new key or options apply at the next remount or boot`);
    if (await shareMounted(ctx, d)) return;
  }
  if (previous !== undefined) return mountOrRestore(ctx, d, previous);
  try {
    await mountNow(ctx, d);
  } catch (err) {
    // New options the server refuses leave nothing older to fall back to; one more try covers a passing failure.
    log.warn(`mounting ${d.mountPoint} with the new options failed (${messageOf(err)}); trying once more`);
    if (!(await shareMounted(ctx, d))) await mountNow(ctx, d);
  }
}
