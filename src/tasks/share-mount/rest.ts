import os from 'node:os';
import type { ShareClient } from '@azure/storage-file-share';
import { configError, permanent, transient, type AgentError } from '../../agent/errors.js';
import type { TaskContext } from '../../agent/task.js';
import { filesServiceUrl, shareUrl } from './endpoint.js';
import { primeStorageKey, storageKey, storageKeyIfLocal, type AzureHttpOptions } from './key.js';
import type { AzureChild, ShareCall, ShareReply } from '../../agent/azure/child.js';
import { AZURE_ANSWER_LIMITS, AzureAnswerError, boundedHttpClient } from '../../agent/azure/bounded.js';

/** A share call in the daemon's Azure child: with the key when the daemon has it, keeping the key the child found otherwise. */
async function inChild<T>(ctx: TaskContext, child: AzureChild, call: ShareCall, opts: AzureHttpOptions): Promise<T> {
  const key = await storageKeyIfLocal(ctx, opts);
  const r = await child.call<ShareReply<T>>({ ...call, ...(key === undefined ? {} : { key }) }, { signal: ctx.signal });
  if (r.key !== undefined && key === undefined) primeStorageKey(ctx, r.key);
  return r.value;
}

/**
 * The share seen through the Files REST API (@azure/storage-file-share),
 * signed with the storage key: usage against quota, folder creation, the
 * handles a terminating VM leaves behind. NFS shares have no data-plane REST;
 * a Kerberos share has no key here.
 */
export async function openShareClient(ctx: TaskContext, opts: AzureHttpOptions = {}): Promise<ShareClient> {
  const share = ctx.cfg.share;
  if (!share) throw configError('share: no share configured', { fix: 'add a share section to the config' });
  if (share.type === 'nfs')
    throw configError(`share: ${share.account}/${share.name} is NFS, which has no Files REST API`, {
      fix: 'use the mount itself (statfs) for NFS shares',
      reason: 'share-rest-nfs',
    });
  const key = await storageKey(ctx, opts);
  const { ShareClient: Client, StorageSharedKeyCredential, newPipeline } = await import('@azure/storage-file-share');
  const limits = opts.limits ?? AZURE_ANSWER_LIMITS;
  // StoragePipelineOptions does not declare `agent`, but passes it on to core-rest-pipeline.
  const pipeline = newPipeline(new StorageSharedKeyCredential(share.account, key), {
    retryOptions: { maxTries: 2, tryTimeoutInMs: limits.tryTimeoutMs },
    ...(opts.agent ? { agent: opts.agent } : {}),
  } as never);
  // Answers are read bounded (agent/azure/bounded.ts). StoragePipelineOptions
  // takes only an old-style HTTP client; the pipeline object keeps the core
  // client it will use in `_coreHttpClient` (storage-file-share 12.31, pinned):
  // set before the first client is made from it. The 50 MB answer case of
  // test/unit/faults/azure-answers.test.ts fails if a new version drops it.
  (pipeline as unknown as { _coreHttpClient?: unknown })._coreHttpClient = await boundedHttpClient(ctx.cfg.azure, limits);
  return new Client(shareUrl(share), pipeline);
}

/** Map a REST failure to an error naming the share and the fix. */
export function restError(err: unknown, what: string, ctx: TaskContext): AgentError {
  const share = ctx.cfg.share;
  const where = share ? `${filesServiceUrl(share)}/${share.name}` : 'the share';
  const e = err as { statusCode?: number; code?: string; message?: string };
  const first = String(e?.message ?? err).split('\n')[0] ?? '';
  if (e?.statusCode === 403 && (e.code === 'AuthenticationFailed' || e.code === undefined)) {
    return permanent(`share: ${what}: the storage account refused the key (403 AuthenticationFailed) at ${where}`, {
      fix: 'the key is wrong or was rotated: put the current key1/key2 of the account in share.key (or use armListKeys), then run dsvm-agent provision',
      reason: 'share-auth-failed',
    });
  }
  if (e?.statusCode === 403)
    return permanent(`share: ${what}: forbidden at ${where} (403 ${e.code})`, {
      fix: "check the storage account's firewall and shared-key access settings",
      reason: 'share-forbidden',
    });
  if (e?.statusCode === 404 && e.code === 'ShareNotFound') {
    return permanent(`share: ${what}: no share "${share?.name}" in account "${share?.account}"`, {
      fix: 'create the file share or correct share.name',
      reason: 'share-not-found',
    });
  }
  // A 2xx the SDK could not parse (a proxy's page, a cut XML body), or one too large to read: not a
  // refusal by the service, so not permanent; and the SDK's parse message (which quotes the body) is not passed on.
  if (
    e?.code === 'PARSE_ERROR' ||
    (e?.statusCode !== undefined && e.statusCode < 300) ||
    (err instanceof AzureAnswerError && err.code === 'ANSWER_TOO_LARGE')
  ) {
    const detail =
      err instanceof AzureAnswerError ? err.message : `the answer${e?.statusCode ? ` (${e.statusCode})` : ''} is not a Files REST answer`;
    return transient(`share: ${what}: ${where}: ${detail}`, {
      fix: 'check outbound HTTPS (443) to the storage account and that no proxy answers in its place; retried later',
      reason: 'share-rest-bad-answer',
    });
  }
  if (e?.statusCode !== undefined && e.statusCode < 500 && e.statusCode !== 408 && e.statusCode !== 429) {
    return permanent(`share: ${what} at ${where}: ${e.statusCode} ${e.code ?? ''} ${first}`.trim(), { reason: 'share-rest-error' });
  }
  return transient(`share: ${what}: ${where} unreachable or busy: ${first}`, {
    fix: 'check outbound HTTPS (443) to the storage account',
    reason: 'share-rest-unreachable',
  });
}

const KEY_CHECK_TIMEOUT_MS = 8_000;

/**
 * Ask the Files REST API for the share's properties with the key: a wrong
 * key or share name is then reported as such before any mount, and the
 * REST answer does not depend on the kernel. An unreachable REST endpoint
 * (443 filtered while 445 is open) only warns: the mount itself will tell.
 * Returns that warning, or undefined when the key was accepted.
 */
export async function verifyShareKey(ctx: TaskContext, opts: AzureHttpOptions = {}): Promise<string | undefined> {
  if (ctx.azureChild) {
    const r = await inChild<{ warning?: string }>(ctx, ctx.azureChild, { op: 'verify-key' }, opts);
    return r.warning;
  }
  const client = await openShareClient(ctx, opts);
  try {
    await client.getProperties({ abortSignal: AbortSignal.timeout(KEY_CHECK_TIMEOUT_MS) });
    return undefined;
  } catch (err) {
    const e = restError(err, 'checking the key', ctx);
    if (e.kind === 'permanent') throw e;
    return `could not check the key over HTTPS before mounting (${e.message}); the mount will tell`;
  }
}

/** Usage against quota, for the health check and metrics. */
export interface ShareUsage {
  usedBytes: number;
  quotaBytes: number;
}

const GiB = 1024 ** 3;

/** Bytes used and the quota of the share (REST `restype=share&comp=stats` and share properties). */
export async function shareUsageRest(ctx: TaskContext, opts: AzureHttpOptions = {}): Promise<ShareUsage> {
  if (ctx.azureChild) return inChild<ShareUsage>(ctx, ctx.azureChild, { op: 'share-usage' }, opts);
  const client = await openShareClient(ctx, opts);
  try {
    const [stats, props] = await Promise.all([client.getStatistics(), client.getProperties()]);
    // The SDK hands back whatever it parsed: a body without ShareUsageBytes (JSON, an empty 200) would be NaN in every metric after.
    if (typeof stats.shareUsageBytes !== 'number' || !Number.isFinite(stats.shareUsageBytes))
      throw Object.assign(new Error('no ShareUsageBytes'), { statusCode: 200 });
    return { usedBytes: stats.shareUsageBytes, quotaBytes: (props.quota ?? 0) * GiB };
  } catch (err) {
    throw restError(err, 'reading usage and quota', ctx);
  }
}

/** Validate a share-relative folder: "/"-separated names, no "." or "..", none of Azure's forbidden characters. */
export function folderSegments(relPath: string): string[] {
  const segments = relPath.split('/').filter((s) => s !== '');
  if (segments.length === 0) throw configError(`share folder "${relPath}" is empty`, { fix: 'name a folder inside the share' });
  for (const s of segments) {
    const control = [...s].some((c) => c.charCodeAt(0) < 0x20);
    if (s === '.' || s === '..' || control || /["\\:|<>*?]/.test(s) || s.length > 255) {
      throw configError(`share folder "${relPath}": "${s}" is not a valid Azure Files name`, {
        fix: 'use names without "\\ : | < > * ? and not . or ..',
      });
    }
  }
  return segments;
}

/**
 * Make a folder in the share, parents first (the service creates one level
 * per call and answers ParentNotFound otherwise). Idempotent: existing levels
 * are left alone. Returns the levels it created.
 */
export async function ensureShareFolderRest(ctx: TaskContext, relPath: string, opts: AzureHttpOptions = {}): Promise<string[]> {
  const segments = folderSegments(relPath);
  if (ctx.azureChild) return inChild<string[]>(ctx, ctx.azureChild, { op: 'ensure-folder', relPath }, opts);
  const client = await openShareClient(ctx, opts);
  const created: string[] = [];
  for (let i = 1; i <= segments.length; i++) {
    const level = segments.slice(0, i).join('/');
    try {
      if ((await client.getDirectoryClient(level).createIfNotExists()).succeeded) created.push(level);
    } catch (err) {
      throw restError(err, `creating folder ${level}`, ctx);
    }
  }
  return created;
}

/** A handle as list-handles reports it. */
export interface HandleInfo {
  handleId: string;
  path: string;
  clientIp: string;
  clientName?: string;
}

/** Who this VM is, as the Files service sees its SMB clients. */
export interface ClientIdentity {
  addresses: string[];
  names: string[];
}

/** This machine's non-loopback addresses and names (hostname, its 15-character NetBIOS form, the computer name). */
export function localClientIdentity(ctx: TaskContext): ClientIdentity {
  const addresses = Object.values(os.networkInterfaces())
    .flat()
    .filter((a): a is os.NetworkInterfaceInfo => !!a && !a.internal)
    .map((a) => a.address);
  const host = os.hostname().split('.')[0] ?? '';
  const computer = ctx.state.facts.computerName;
  const names = [host, host.slice(0, 15), ...(computer ? [computer] : [])].filter(Boolean);
  return { addresses, names };
}

/**
 * Whether a handle belongs to this VM. The service can only tell clients
 * apart by IP and (recent API versions) client name. The IP must be one of
 * ours; VMs behind one NAT share an IP, so when the service reports a name
 * it must be ours too. Anything uncertain is left open: closing another VM's
 * handle would break that user's open notebook.
 */
export function isOwnHandle(h: HandleInfo, me: ClientIdentity): boolean {
  const ip = h.clientIp.replace(/^\[?([^\]]+?)\]?(:\d+)?$/, '$1').replace(/^::ffff:/, '');
  if (!me.addresses.includes(ip)) return false;
  if (!h.clientName) return true;
  const name = h.clientName.toLowerCase();
  return me.names.some((n) => n.toLowerCase() === name);
}

/** Close this VM's handles on the share; returns how many were closed and how many failed. */
export async function closeOwnHandles(
  ctx: TaskContext,
  me: ClientIdentity,
  opts: AzureHttpOptions = {},
): Promise<{ closed: number; failed: number; foreign: number }> {
  if (ctx.azureChild) return inChild(ctx, ctx.azureChild, { op: 'close-handles', identity: me }, opts);
  const client = await openShareClient(ctx, opts);
  const own: HandleInfo[] = [];
  let foreign = 0;
  try {
    for await (const h of client.rootDirectoryClient.listHandles({ recursive: true })) {
      const info: HandleInfo = {
        handleId: h.handleId,
        path: h.path ?? '',
        clientIp: h.clientIp ?? '',
        ...(h.clientName ? { clientName: h.clientName } : {}),
      };
      if (isOwnHandle(info, me)) own.push(info);
      else foreign++;
    }
  } catch (err) {
    throw restError(err, 'listing open handles', ctx);
  }
  let closed = 0;
  let failed = 0;
  for (const h of own) {
    // The SDK's single-handle close is not recursive: address the handle's own path.
    // It may be a file or a directory; the service says which by refusing the other.
    const asFile = (): Promise<{ closedHandlesCount?: number; closeFailureCount?: number }> =>
      client.rootDirectoryClient.getFileClient(h.path).forceCloseHandle(h.handleId);
    const asDir = (): Promise<{ closedHandlesCount?: number; closeFailureCount?: number }> =>
      (h.path ? client.getDirectoryClient(h.path) : client.rootDirectoryClient).forceCloseHandle(h.handleId);
    try {
      let r;
      try {
        r = h.path ? await asFile() : await asDir();
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code !== 'ResourceTypeMismatch' && code !== 'ResourceNotFound') throw err;
        r = await asDir();
      }
      closed += r.closedHandlesCount ?? 0;
      failed += r.closeFailureCount ?? 0;
    } catch (err) {
      failed++;
      ctx.log.child('share-mount').warn(restError(err, `closing handle ${h.handleId} on ${h.path || '/'}`, ctx).describe());
    }
  }
  return { closed, failed, foreign };
}
