import { open } from 'node:fs/promises';
import { constants } from 'node:fs';
import type { Config, SecretRef } from './config-schema.js';
import { permanent, transient } from './errors.js';
import type { Logger } from './log.js';
import type { Redactor } from './redact.js';
import { identityName, managedIdentity, statusOf } from './azure/identity.js';
import type { Paths } from './paths.js';
import type { AzureChild } from './azure/child.js';
import { AZURE_ANSWER_LIMITS, AzureAnswerError, boundedHttpClient, type AnswerLimits } from './azure/bounded.js';

export interface SecretDeps {
  cfg: Pick<Config, 'azure' | 'identity'>;
  paths: Paths;
  log: Logger;
  redactor: Redactor;
  /** Set in the daemon: Key Vault reads run in a child process (see azure/child.ts). */
  azureChild?: AzureChild | undefined;
  /** Bounds on Key Vault and token answers (azure/bounded.ts); only tests set them. */
  answerLimits?: AnswerLimits;
  /** The owner a secret file must have: root (0) unless set; only tests set it (see readSecretFile). */
  secretFileOwnerUid?: number;
}

/**
 * The secrets one task context resolved, by name, owned by the context
 * (TaskContext.secrets) and shared with the copies withSignal makes: each
 * is resolved once, since `check` runs before and after `apply` and a Key
 * Vault or ARM round trip each time would add seconds to first boot. A
 * failure is not kept: the next attempt (the engine's retry) asks again.
 */
export class SecretCache {
  private readonly byName = new Map<string, Promise<string>>();

  /** What `name` holds (resolved or on its way), or what `resolve` gives, kept from now on. */
  get(name: string, resolve: () => Promise<string>): Promise<string> {
    const held = this.byName.get(name);
    if (held) return held;
    const p = resolve();
    this.set(name, p);
    return p;
  }

  /** What `name` holds, without resolving it. */
  peek(name: string): Promise<string> | undefined {
    return this.byName.get(name);
  }

  /** Hold `value` under `name` from now on (a fresh read past the cache, a value handed over). */
  set(name: string, value: Promise<string>): void {
    this.byName.set(name, value);
    value.catch(() => {
      if (this.byName.get(name) === value) this.byName.delete(name);
    });
  }

  forget(name: string): void {
    this.byName.delete(name);
  }
}

/**
 * Resolve a secret reference to its value. `keyPath` names the config key
 * (e.g. "domain.joinPassword") in every error. The value is registered with
 * the redactor before it is returned, so no later log line can carry it.
 */
export async function readSecret(ref: SecretRef, keyPath: string, deps: SecretDeps): Promise<string> {
  const value =
    'file' in ref
      ? await readSecretFile(ref.file, keyPath, deps.paths, { ownerUid: deps.secretFileOwnerUid ?? 0 })
      : deps.azureChild
        ? await deps.azureChild.call<string>({ op: 'keyvault-secret', ref, keyPath })
        : await readKeyVaultSecret(ref.keyVault, keyPath, deps);
  deps.redactor.add(value);
  return value;
}

/**
 * A secret file must be a regular file owned by root with no group/other
 * permission bits: anything else means another account could have read or
 * planted it. O_NOFOLLOW: the path itself must not be a symlink.
 *
 * The secret is the file's one line: trailing line breaks (from `echo` or
 * an editor) are dropped; any other line break is refused, since the value
 * goes on as one line (adcli's stdin, the line `password=` of a
 * credentials file, where a second line would become another setting).
 * Other whitespace is kept: it may be part of a password.
 *
 * `opts.ownerUid` is the owner required; only tests, which cannot make
 * root-owned files without root, pass anything but 0.
 */
export async function readSecretFile(file: string, keyPath: string, paths: Paths, opts: { ownerUid?: number } = {}): Promise<string> {
  const ownerUid = opts.ownerUid ?? 0;
  const real = paths.under(file);
  let handle;
  try {
    handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      throw permanent(`${keyPath}: secret file ${file} does not exist`, {
        fix: `write it (owned by root, mode 0600) or change ${keyPath}`,
        reason: 'secret-missing',
      });
    if (code === 'ELOOP')
      throw permanent(`${keyPath}: secret file ${file} is a symbolic link`, {
        fix: 'point the config at the real file',
        reason: 'secret-insecure',
      });
    throw permanent(`${keyPath}: secret file ${file} cannot be read (${code})`, {
      fix: 'run the agent as root and check the file',
      reason: 'secret-unreadable',
    });
  }
  try {
    const st = await handle.stat();
    if (!st.isFile())
      throw permanent(`${keyPath}: ${file} is not a regular file`, {
        fix: 'point the config at a file holding the secret',
        reason: 'secret-insecure',
      });
    if (st.uid !== ownerUid)
      throw permanent(`${keyPath}: secret file ${file} is owned by uid ${st.uid}, not ${ownerUid === 0 ? 'root' : `uid ${ownerUid}`}`, {
        fix: `chown root:root ${file} && chmod 0600 ${file}, and rotate the secret: its owner could read or replace it`,
        reason: 'secret-insecure',
      });
    if ((st.mode & 0o077) !== 0) {
      throw permanent(
        `${keyPath}: secret file ${file} has mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}, readable or writable by group or others`,
        {
          fix: `chmod 0600 ${file} (and rotate the secret: others may have read it)`,
          reason: 'secret-insecure',
        },
      );
    }
    const text = (await handle.readFile('utf8')).replace(/[\r\n]+$/, '');
    if (text.trim().length === 0)
      throw permanent(`${keyPath}: secret file ${file} is empty${text.length > 0 ? ' (only whitespace)' : ''}`, {
        fix: 'write the secret into it',
        reason: 'secret-empty',
      });
    if (/[\r\n]/.test(text))
      throw permanent(`${keyPath}: secret file ${file} holds more than one line`, {
        fix: 'write the secret alone, on one line',
        reason: 'secret-malformed',
      });
    return text;
  } finally {
    await handle.close();
  }
}

async function readKeyVaultSecret(
  ref: { vaultUrl: string; name: string; version?: string | undefined },
  keyPath: string,
  deps: SecretDeps,
): Promise<string> {
  const where = `Key Vault secret "${ref.name}" in ${ref.vaultUrl}`;
  const limits = deps.answerLimits ?? AZURE_ANSWER_LIMITS;
  const credential = await managedIdentity(deps.cfg, limits);
  const { SecretClient } = await import('@azure/keyvault-secrets');
  const client = new SecretClient(ref.vaultUrl, credential, {
    retryOptions: { maxRetries: 2 },
    // Through azure.proxy (or the unit's HTTPS_PROXY) unless NO_PROXY names the vault: azure/proxy.ts.
    httpClient: await boundedHttpClient(deps.cfg.azure, limits),
  });
  deps.log.child('secrets').debug(`reading ${where} for ${keyPath}`);
  try {
    const secret = await client.getSecret(ref.name, ref.version ? { version: ref.version } : {});
    if (!secret.value) throw permanent(`${keyPath}: ${where} is empty`, { fix: 'set a value for the secret', reason: 'secret-empty' });
    return secret.value;
  } catch (err) {
    if ((err as { kind?: string }).kind) throw err;
    const status = statusOf(err);
    const name = (err as Error).name;
    if (status === 403) {
      throw permanent(`${keyPath}: ${where}: access denied (403)`, {
        fix: `grant the ${identityName(deps.cfg)} "get" on secrets (access policy or the "Key Vault Secrets User" role)`,
        reason: 'keyvault-forbidden',
      });
    }
    if (status === 404)
      throw permanent(`${keyPath}: ${where} not found (404)`, {
        fix: 'create the secret or correct the name',
        reason: 'keyvault-not-found',
      });
    if (status === 401)
      throw permanent(`${keyPath}: ${where}: the token was refused (401)`, {
        fix: "check that the vault is in the VM identity's tenant",
        reason: 'keyvault-unauthorized',
      });
    // A 200 the SDK cannot read (a proxy's HTML page, a cut JSON body): the
    // SDK's own message quotes the body, which may hold part of the secret,
    // so it is never passed on. Too large or too slow: bounded.ts gave up.
    if (err instanceof AzureAnswerError || isUnreadableAnswer(err)) {
      const tooSlow = err instanceof AzureAnswerError && err.code === 'ETIMEDOUT';
      throw transient(
        `${keyPath}: cannot read ${where}: ${err instanceof AzureAnswerError ? err.message : `the answer${status ? ` (${status})` : ''} is not a Key Vault answer`}`,
        {
          fix: tooSlow
            ? 'check that the VM can reach the vault over HTTPS; retried with backoff'
            : 'retried with backoff; if it persists, check that no proxy or firewall answers in place of the vault',
          reason: tooSlow ? 'keyvault-unreachable' : 'keyvault-bad-answer',
        },
      );
    }
    if (
      name === 'CredentialUnavailableError' ||
      name === 'AuthenticationError' ||
      isNetworkError(err) ||
      (status !== undefined && (status >= 500 || status === 429))
    ) {
      throw transient(`${keyPath}: cannot read ${where}: ${firstLine(err)}`, {
        fix: `check that the VM has a managed identity${deps.cfg.identity.clientId ? ` with client id ${deps.cfg.identity.clientId}` : ''} and can reach IMDS and the vault`,
        reason: 'keyvault-unreachable',
      });
    }
    throw permanent(`${keyPath}: ${where}: ${firstLine(err)}`, {
      fix: /does not match the requested domain/.test(firstLine(err))
        ? "the vault URL must be the vault's own host name (https://NAME.vault.azure.net, or the sovereign cloud's vault domain)"
        : 'check the vault URL and the secret name',
      reason: 'keyvault-error',
    });
  }
}

/**
 * An answer the SDK could not make sense of: its parse error (which quotes
 * the body) or a TypeError from reading fields of something that is not a
 * secret bundle (a 200 text/html page parses to nothing).
 */
export function isUnreadableAnswer(err: unknown): boolean {
  const e = err as { code?: string; name?: string };
  return e?.code === 'PARSE_ERROR' || e?.name === 'TypeError' || e?.name === 'SyntaxError';
}

/** Connection-level failures (DNS not ready, vault or IMDS unreachable) may pass; anything else will not. */
function isNetworkError(err: unknown): boolean {
  const code = (err as { code?: string })?.code ?? '';
  return [
    'ECONNREFUSED',
    'ECONNRESET',
    'ETIMEDOUT',
    'ENOTFOUND',
    'EAI_AGAIN',
    'ENETUNREACH',
    'EHOSTUNREACH',
    'REQUEST_SEND_ERROR',
  ].includes(code);
}

function firstLine(err: unknown): string {
  return String((err as Error)?.message ?? err).split('\n')[0] ?? '';
}
