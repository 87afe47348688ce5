import { isIP } from 'node:net';
import type http from 'node:http';
import { requestId, sendJson, type Ctx, type ServerDeps } from './http.js';
import { checkBearer, clientIdOfBearer } from './bearer.js';
import type { FakeState } from './state.js';

/**
 * Key Vault secrets data plane (GET only), with the bearer-challenge flow of
 * the real service: a request without a token gets 401 and a
 * `WWW-Authenticate` naming the tenant and the resource to ask a token for.
 */

const PUBLIC_VAULT_RESOURCE = 'https://vault.azure.net';

/**
 * The resource the challenge names. @azure/keyvault-common accepts a challenge
 * only when the vault host ends with "." + the resource's host, so for
 * "dsvm.vault.localhost" the fake answers "https://vault.localhost" (as the
 * real service answers "https://vault.azure.net" for "x.vault.azure.net").
 * An IP or single-label host can never pass that check: the fake then names
 * the public resource, and a client must disable challenge verification.
 */
export function challengeResource(hostHeader: string | undefined): string {
  const hostname = (hostHeader ?? '').replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  if (!hostname || isIP(hostname) || !hostname.includes('.')) return PUBLIC_VAULT_RESOURCE;
  return `https://${hostname.slice(hostname.indexOf('.') + 1)}`;
}

function kvError(ctx: Ctx, status: number, code: string, message: string, inner?: string, headers: Record<string, string> = {}): void {
  sendJson(
    ctx.res,
    status,
    { error: { code, message, ...(inner ? { innererror: { code: inner } } : {}) } },
    { 'x-ms-request-id': requestId(), ...headers },
  );
}

function getSecret(state: FakeState, ctx: Ctx, name: string, version: string | undefined): void {
  const resource = challengeResource(ctx.req.headers.host);
  const challenge = {
    'www-authenticate': `Bearer authorization="https://login.microsoftonline.com/${state.tenantId}", resource="${resource}"`,
  };
  const check = checkBearer(state, ctx.req.headers.authorization, [resource, PUBLIC_VAULT_RESOURCE]);
  if (!check.ok) {
    const messages = {
      missing: 'AKV10000: Request is missing a Bearer or PoP token.',
      unknown: 'AKV10032: Invalid issuer. Expected one of https://sts.windows.net/..., found an unknown token.',
      expired: 'AKV10022: Token expired.',
      audience: `AKV10022: Invalid audience. Expected ${resource}, found: ${check.resource ?? ''}.`,
    } as const;
    return kvError(ctx, 401, 'Unauthorized', messages[check.reason], undefined, challenge);
  }
  if (!ctx.query['api-version']) return kvError(ctx, 400, 'BadParameter', 'The request URI contains an invalid or missing api-version.');
  const { token } = check;
  const host = (ctx.req.headers.host ?? 'vault').replace(/:\d+$/, '');
  // RBAC is checked before existence: an identity without access cannot probe names.
  if (!state.mayReadSecret(token, name)) {
    return kvError(
      ctx,
      403,
      'Forbidden',
      `Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid=${token.clientId};oid=${token.objectId};iss=https://sts.windows.net/${state.tenantId}/\r\nAction: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\nResource: '/secrets/${name}'\r\nAssignment: (not found)\r\nVault: ${host}`,
      'ForbiddenByRbac',
    );
  }
  const versions = state.secrets.get(name) ?? [];
  const secret = version ? versions.find((v) => v.version === version) : versions.at(-1);
  if (!secret) {
    return kvError(
      ctx,
      404,
      'SecretNotFound',
      `A secret with (name/id) ${version ? `${name}/${version}` : name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182`,
    );
  }
  if (!secret.enabled) return kvError(ctx, 403, 'Forbidden', 'Operation get is not allowed on a disabled secret.', 'SecretDisabled');
  const base = `https://${ctx.req.headers.host ?? host}`;
  sendJson(
    ctx.res,
    200,
    {
      value: secret.value,
      ...(secret.contentType ? { contentType: secret.contentType } : {}),
      id: `${base}/secrets/${name}/${secret.version}`,
      attributes: {
        enabled: secret.enabled,
        created: secret.created,
        updated: secret.created,
        recoveryLevel: 'Recoverable+Purgeable',
        recoverableDays: 90,
      },
      tags: {},
    },
    { 'x-ms-request-id': requestId(), 'x-ms-keyvault-service-version': '1.9.0.0' },
  );
}

export function keyVaultDeps(state: FakeState): Pick<ServerDeps, 'route' | 'errorBody' | 'malformedBody' | 'notFound' | 'clientIdOf'> {
  return {
    route(req: http.IncomingMessage, url: URL) {
      const m = /^\/secrets\/([^/]+)(?:\/([^/]*))?\/?$/.exec(url.pathname);
      if (!m?.[1] || req.method !== 'GET') return undefined;
      const name = decodeURIComponent(m[1]);
      const version = m[2] ? decodeURIComponent(m[2]) : undefined;
      return { name: 'keyVault.getSecret', handle: (ctx) => getSecret(state, ctx, name, version) };
    },
    errorBody: (status) => ({
      contentType: 'application/json',
      body: JSON.stringify({
        error: {
          code: status === 429 ? 'Throttled' : status >= 500 ? 'InternalServerError' : `Http${status}`,
          message: `Injected failure (${status})`,
        },
      }),
    }),
    malformedBody: { contentType: 'application/json', body: '{"value":"' },
    notFound: (ctx) => kvError(ctx, 404, 'NotFound', `The requested path ${ctx.url.pathname} is not supported by this fake.`),
    clientIdOf: clientIdOfBearer(state),
  };
}
