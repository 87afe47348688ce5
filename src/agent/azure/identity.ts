import type { TokenCredential } from '@azure/core-auth';
import type { Config } from '../config-schema.js';
import { AZURE_ANSWER_LIMITS, boundedHttpClient, type AnswerLimits } from './bounded.js';

/** The default IMDS address; any other configured value is a test fake or a proxy. */
export const DEFAULT_IMDS = 'http://169.254.169.254';

/**
 * The VM's managed identity as an @azure/identity credential. The SDK reads
 * the IMDS address only from the environment: AZURE_POD_IDENTITY_AUTHORITY_HOST
 * keeps the IMDS wire format (IMDS_ENDPOINT would switch to the Azure Arc flow),
 * so a configured azure.imdsEndpoint is passed that way. Our children never see
 * it: the command runner gives them a fixed environment.
 *
 * The SDK is imported lazily: the login path must not pay for loading it.
 */
export async function managedIdentity(
  cfg: Pick<Config, 'azure' | 'identity'>,
  limits: AnswerLimits = AZURE_ANSWER_LIMITS,
): Promise<TokenCredential> {
  const endpoint = cfg.azure.imdsEndpoint.replace(/\/+$/, '');
  if (endpoint !== DEFAULT_IMDS) process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST = endpoint;
  const { ManagedIdentityCredential } = await import('@azure/identity');
  // The SDK's own default (5 retries from 800 ms) would hide an unreachable
  // IMDS for half a minute; the task engine retries with its own backoff.
  const retryOptions = { maxRetries: 2 };
  // A token answer is read bounded too (bounded.ts): `httpClient` is the one
  // option the credential hands on to its IMDS client (it replaces additionalPolicies).
  // It also keeps the token requests off any proxy (azure/proxy.ts).
  const httpClient = await boundedHttpClient(cfg.azure, limits);
  return cfg.identity.clientId
    ? new ManagedIdentityCredential({ clientId: cfg.identity.clientId, retryOptions, httpClient } as never)
    : new ManagedIdentityCredential({ retryOptions, httpClient } as never);
}

/** The user-facing name of the identity, for error messages. */
export function identityName(cfg: Pick<Config, 'identity'>): string {
  return cfg.identity.clientId ? `user-assigned identity ${cfg.identity.clientId}` : "VM's system-assigned identity";
}

/** HTTP status of an Azure SDK error, if any. */
export function statusOf(err: unknown): number | undefined {
  const e = err as { statusCode?: number; status?: number; response?: { status?: number } };
  return e?.statusCode ?? e?.status ?? e?.response?.status;
}
