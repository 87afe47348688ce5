import type http from 'node:http';
import { randomUUID } from 'node:crypto';
import { sendJson, type Ctx, type ServerDeps } from './http.js';
import { checkBearer, clientIdOfBearer } from './bearer.js';
import type { FakeState } from './state.js';

/** Azure Resource Manager: only `storageAccounts/{name}/listKeys`. */

/** ARM accepts tokens for either management resource URI, with or without "/". */
const ARM_AUDIENCES = ['https://management.azure.com', 'https://management.core.windows.net'];

function armError(ctx: Ctx, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  sendJson(
    ctx.res,
    status,
    { error: { code, message } },
    { 'x-ms-request-id': randomUUID(), 'x-ms-correlation-request-id': randomUUID(), ...headers },
  );
}

interface ListKeysTarget {
  subscriptionId: string;
  resourceGroup: string;
  account: string;
}

function listKeys(state: FakeState, ctx: Ctx, target: ListKeysTarget): void {
  // A token for this endpoint itself is valid too, as a sovereign cloud's ARM
  // (management.chinacloudapi.cn, management.usgovcloudapi.net) takes tokens
  // for its own host: the agent asks for `<managementEndpoint>/.default`.
  const check = checkBearer(state, ctx.req.headers.authorization, [...ARM_AUDIENCES, `https://${ctx.req.headers.host ?? ''}`]);
  if (!check.ok) {
    const challenge = {
      'www-authenticate': `Bearer authorization_uri="https://login.microsoftonline.com/${state.tenantId}", error="invalid_token", error_description="The authentication failed because of missing 'Authorization' header."`,
    };
    if (check.reason === 'missing')
      return armError(ctx, 401, 'AuthenticationFailed', "Authentication failed. The 'Authorization' header is missing.", challenge);
    if (check.reason === 'audience') {
      return armError(
        ctx,
        401,
        'InvalidAuthenticationTokenAudience',
        `The access token has been obtained for wrong audience or resource '${check.resource ?? ''}'. It should exactly match with one of the allowed audiences 'https://management.core.windows.net/','https://management.core.windows.net','https://management.azure.com/','https://management.azure.com'.`,
      );
    }
    if (check.reason === 'expired')
      return armError(ctx, 401, 'ExpiredAuthenticationToken', 'The access token expiry UTC time is earlier than current UTC time.');
    return armError(ctx, 401, 'InvalidAuthenticationToken', 'The access token is invalid.');
  }
  if (!ctx.query['api-version'])
    return armError(
      ctx,
      400,
      'MissingApiVersionParameter',
      'The api-version query parameter (?api-version=) is required for all requests.',
    );
  const scope = `/subscriptions/${target.subscriptionId}/resourceGroups/${target.resourceGroup}/providers/Microsoft.Storage/storageAccounts/${target.account}`;
  // ARM authorizes the scope before it looks the resource up.
  if (!state.mayListKeys(check.token, target.account)) {
    return armError(
      ctx,
      403,
      'AuthorizationFailed',
      `The client '${check.token.objectId}' with object id '${check.token.objectId}' does not have authorization to perform action 'Microsoft.Storage/storageAccounts/listKeys/action' over scope '${scope}' or the scope is invalid. If access was recently granted, please refresh your credentials.`,
    );
  }
  const account = state.accounts.get(target.account);
  const lower = (s: string | undefined): string | undefined => s?.toLowerCase();
  if (account?.subscriptionId && lower(account.subscriptionId) !== lower(target.subscriptionId)) {
    return armError(ctx, 404, 'SubscriptionNotFound', `The subscription '${target.subscriptionId}' could not be found.`);
  }
  if (account?.resourceGroup && lower(account.resourceGroup) !== lower(target.resourceGroup)) {
    return armError(ctx, 404, 'ResourceGroupNotFound', `Resource group '${target.resourceGroup}' could not be found.`);
  }
  if (!account) {
    return armError(
      ctx,
      404,
      'ResourceNotFound',
      `The Resource 'Microsoft.Storage/storageAccounts/${target.account}' under resource group '${target.resourceGroup}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`,
    );
  }
  const created = new Date(0).toISOString();
  sendJson(
    ctx.res,
    200,
    {
      keys: [
        { creationTime: created, keyName: 'key1', value: account.keys[0], permissions: 'FULL' },
        { creationTime: created, keyName: 'key2', value: account.keys[1], permissions: 'FULL' },
      ],
    },
    { 'x-ms-request-id': randomUUID(), 'x-ms-correlation-request-id': randomUUID() },
  );
}

const LIST_KEYS =
  /^\/subscriptions\/([^/]+)\/resourcegroups\/([^/]+)\/providers\/microsoft\.storage\/storageaccounts\/([^/]+)\/listkeys\/?$/i;

export function armDeps(state: FakeState): Pick<ServerDeps, 'route' | 'errorBody' | 'malformedBody' | 'notFound' | 'clientIdOf'> {
  return {
    route(req: http.IncomingMessage, url: URL) {
      const m = LIST_KEYS.exec(url.pathname);
      if (!m?.[1] || !m[2] || !m[3] || req.method !== 'POST') return undefined;
      const target = {
        subscriptionId: decodeURIComponent(m[1]),
        resourceGroup: decodeURIComponent(m[2]),
        account: decodeURIComponent(m[3]),
      };
      return { name: 'arm.listKeys', handle: (ctx) => listKeys(state, ctx, target) };
    },
    errorBody: (status) => ({
      contentType: 'application/json',
      body: JSON.stringify({
        error: {
          code:
            status === 429
              ? 'TooManyRequests'
              : status === 503
                ? 'ServiceUnavailable'
                : status >= 500
                  ? 'InternalServerError'
                  : `Http${status}`,
          message: `Injected failure (${status})`,
        },
      }),
    }),
    malformedBody: { contentType: 'application/json', body: '{"keys":[{"keyName":"key1","value":"' },
    notFound: (ctx) =>
      armError(
        ctx,
        404,
        'InvalidResourceType',
        `The resource path '${ctx.url.pathname}' is not served by this fake (only storageAccounts/listKeys).`,
      ),
    clientIdOf: clientIdOfBearer(state),
  };
}
