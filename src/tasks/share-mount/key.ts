import type { Agent } from 'node:https';
import type { ShareConfig, StorageKeyRef } from '../../agent/config-schema.js';
import { configError, permanent, transient } from '../../agent/errors.js';
import { identityName, managedIdentity, statusOf } from '../../agent/azure/identity.js';
import { AZURE_ANSWER_LIMITS, boundedHttpClient, type AnswerLimits } from '../../agent/azure/bounded.js';
import { isUnreadableAnswer, readSecret } from '../../agent/secrets.js';
import type { TaskContext } from '../../agent/task.js';

/** Test seam for the https calls (a CA the fakes use); production passes nothing. */
export interface AzureHttpOptions {
  agent?: Agent;
  /** Bounds on each answer (agent/azure/bounded.ts); default AZURE_ANSWER_LIMITS. */
  limits?: AnswerLimits;
}

type ArmRef = Extract<StorageKeyRef, { armListKeys: unknown }>['armListKeys'];

/** The key's name in the context's secret cache (ctx.secrets), where it is resolved once. */
const STORAGE_KEY = 'share.key';

/**
 * The storage account key, from a secret reference or ARM listKeys. It is
 * registered with the redactor before anyone sees it, and lives only in
 * memory and the credentials file.
 */
export function storageKey(ctx: TaskContext, opts: AzureHttpOptions = {}): Promise<string> {
  const share = ctx.cfg.share;
  if (!share?.key) {
    return Promise.reject(
      configError('share.key: no storage key configured', {
        fix: 'add share.key: {keyVault: ...}, {file: ...} or {armListKeys: {subscriptionId, resourceGroup}}',
      }),
    );
  }
  const ref = share.key;
  return ctx.secrets.get(STORAGE_KEY, () =>
    fetchKey(ctx, share, ref, opts).then((key) => {
      ctx.redactor.add(key);
      return key.trim();
    }),
  );
}

/**
 * The key when it costs no Azure call: already resolved (or on its way) in
 * this context, or in a local file. Undefined when only Key Vault or ARM
 * would tell; a share call in the daemon's child then resolves it there.
 */
export async function storageKeyIfLocal(ctx: TaskContext, opts: AzureHttpOptions = {}): Promise<string | undefined> {
  const pending = ctx.secrets.peek(STORAGE_KEY);
  if (pending) return pending.catch(() => undefined);
  const ref = ctx.cfg.share?.key;
  if (ref && 'file' in ref) return storageKey(ctx, opts);
  return undefined;
}

/**
 * Resolve the key again, past every cache: the context's own (a daemon's
 * context lives as long as the VM) and the secret cache behind `ctx.secret`.
 * The daemon's repair uses it, so a key regenerated in Azure reaches the
 * credentials file without a provision run. The same calls as
 * {@link storageKey}: Key Vault and ARM through the daemon's Azure child.
 */
export function refreshStorageKey(ctx: TaskContext, opts: AzureHttpOptions = {}): Promise<string> {
  const share = ctx.cfg.share;
  const ref = share?.key;
  if (!share || !ref) {
    ctx.secrets.forget(STORAGE_KEY);
    return storageKey(ctx, opts);
  }
  const fresh =
    'armListKeys' in ref
      ? fetchKey(ctx, share, ref, opts)
      : readSecret(ref, 'share.key', {
          cfg: ctx.cfg,
          paths: ctx.paths,
          log: ctx.log,
          redactor: ctx.redactor,
          azureChild: ctx.azureChild,
          secretFileOwnerUid: ctx.secretFileOwnerUid,
        });
  const p = fresh.then((key) => {
    ctx.redactor.add(key);
    return key.trim();
  });
  ctx.secrets.set(STORAGE_KEY, p);
  return p;
}

/** Where the key comes from, for messages: the config key and what it names (never the key). */
export function keySource(ref: StorageKeyRef | undefined, account: string): string {
  if (!ref) return 'share.key (not set)';
  if ('file' in ref) return `share.key.file (${ref.file})`;
  if ('keyVault' in ref) return `share.key.keyVault (secret "${ref.keyVault.name}" in ${ref.keyVault.vaultUrl})`;
  return `share.key.armListKeys (${ref.armListKeys.keyName} of storage account "${account}" through ARM)`;
}

/** How to put a working key where the agent reads it. */
export function keySourceFix(ref: StorageKeyRef | undefined, account: string): string {
  if (!ref) return 'add share.key';
  if ('file' in ref) return `write the current key1 or key2 of storage account "${account}" to ${ref.file} (root, 0600)`;
  if ('keyVault' in ref)
    return `set Key Vault secret "${ref.keyVault.name}" in ${ref.keyVault.vaultUrl} to the current key1 or key2 of storage account "${account}"`;
  // ARM handed out the key the account itself holds: a refusal means another account or a key not yet in effect.
  return `check that share.account and share.filesEndpoint name the account whose ${ref.armListKeys.keyName} ARM lists, and retry in a minute if the key was just regenerated`;
}

/** The child side of an Azure call: the daemon already holds the key, so the child does not ask again. */
export function primeStorageKey(ctx: TaskContext, key: string): void {
  ctx.redactor.add(key);
  ctx.secrets.set(STORAGE_KEY, Promise.resolve(key));
}

async function fetchKey(ctx: TaskContext, share: ShareConfig, ref: StorageKeyRef, opts: AzureHttpOptions): Promise<string> {
  if ('armListKeys' in ref)
    return ctx.azureChild
      ? ctx.azureChild.call<string>({ op: 'arm-list-keys' }, { signal: ctx.signal })
      : armListKeys(ctx, share.account, ref.armListKeys, opts);
  return ctx.secret(ref, 'share.key');
}

async function armListKeys(ctx: TaskContext, account: string, ref: ArmRef, opts: AzureHttpOptions): Promise<string> {
  const where = `storage account "${account}" in resource group "${ref.resourceGroup}" (subscription ${ref.subscriptionId})`;
  const limits = opts.limits ?? AZURE_ANSWER_LIMITS;
  const credential = await managedIdentity(ctx.cfg, limits);
  const { StorageManagementClient } = await import('@azure/arm-storage');
  const endpoint = ctx.cfg.azure.managementEndpoint;
  const client = new StorageManagementClient(credential, ref.subscriptionId, {
    endpoint,
    // The SDK asks for a public-cloud token whatever the endpoint; a sovereign
    // cloud's ARM refuses it (401 InvalidAuthenticationTokenAudience).
    credentials: { scopes: [armScope(endpoint)] },
    retryOptions: { maxRetries: 2 },
    httpClient: await boundedHttpClient(ctx.cfg.azure, limits),
    ...(opts.agent ? { agent: opts.agent } : {}),
  });
  ctx.log.child('share-mount').debug(`listing keys of ${where} through ARM`);
  let keys;
  try {
    keys = (await client.storageAccounts.listKeys(ref.resourceGroup, account)).keys;
  } catch (err) {
    throw armError(err, where, ctx);
  }
  // A 200 without a key list (a proxy's page the SDK read as nothing) is not "the account has no key": that would stop provisioning for good.
  if (!Array.isArray(keys)) throw badArmAnswer(where);
  const key = keys.find((k) => k.keyName?.toLowerCase() === ref.keyName)?.value;
  if (!key)
    throw permanent(`share.key: ARM listKeys for ${where} returned no ${ref.keyName}`, {
      fix: 'check that the account has shared key access enabled (allowSharedKeyAccess)',
      reason: 'share-key-missing',
    });
  return key;
}

/** The token scope for an ARM endpoint: `https://management.chinacloudapi.cn` → `https://management.chinacloudapi.cn/.default`. */
export function armScope(managementEndpoint: string): string {
  return `${managementEndpoint.replace(/\/+$/, '')}/.default`;
}

function badArmAnswer(where: string, status?: number): Error {
  return transient(`share.key: listKeys on ${where}: the answer${status ? ` (${status})` : ''} is not an ARM key list`, {
    fix: 'retried with backoff; if it persists, check that no proxy or firewall answers in place of azure.managementEndpoint (check the VM has a managed identity that can reach it)',
    reason: 'share-listkeys-bad-answer',
  });
}

function armError(err: unknown, where: string, ctx: TaskContext): Error {
  const status = statusOf(err);
  // The SDK's parse error quotes the body, which may hold part of a key: never passed on.
  if (isUnreadableAnswer(err)) return badArmAnswer(where, status);
  const code = (err as { code?: string }).code ?? '';
  const first = String((err as Error)?.message ?? err).split('\n')[0] ?? '';
  if (status === 403) {
    return permanent(`share.key: listKeys on ${where} was refused (403 ${code})`, {
      fix: `grant the ${identityName(ctx.cfg)} the "Storage Account Key Operator Service Role" (action Microsoft.Storage/storageAccounts/listKeys/action) on the storage account`,
      reason: 'share-listkeys-forbidden',
    });
  }
  if (status === 404) {
    return permanent(`share.key: ${where} not found (404 ${code})`, {
      fix: 'check share.account and share.key.armListKeys.subscriptionId/resourceGroup: they must name the account that holds the share',
      reason: 'share-account-not-found',
    });
  }
  if (status === 401) {
    return permanent(`share.key: ARM refused the token for ${where} (401 ${code})`, {
      fix: "check azure.managementEndpoint and that the storage account is in the identity's tenant",
      reason: 'share-listkeys-unauthorized',
    });
  }
  return transient(`share.key: cannot list the keys of ${where}: ${first}`, {
    fix: `check that the VM has a managed identity${ctx.cfg.identity.clientId ? ` with client id ${ctx.cfg.identity.clientId}` : ''} and can reach IMDS and ${ctx.cfg.azure.managementEndpoint}`,
    reason: 'share-listkeys-unreachable',
  });
}
