import type http from 'node:http';
import { randomUUID } from 'node:crypto';
import { sendJson, type Ctx, type ServerDeps } from './http.js';
import { checkBearer, clientIdOfBearer } from './bearer.js';
import type { FakeState, IssuedToken } from './state.js';

/** Azure Resource Manager: `storageAccounts/{name}/listKeys` and the VM list of a scale set. */

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

/** ARM's bearer check, before anything else: the token on success, else the error is sent and undefined returned. */
function authorize(state: FakeState, ctx: Ctx): IssuedToken | undefined {
  // A token for this endpoint itself is valid too, as a sovereign cloud's ARM
  // (management.chinacloudapi.cn, management.usgovcloudapi.net) takes tokens
  // for its own host: the agent asks for `<managementEndpoint>/.default`.
  const check = checkBearer(state, ctx.req.headers.authorization, [...ARM_AUDIENCES, `https://${ctx.req.headers.host ?? ''}`]);
  if (!check.ok) {
    const challenge = {
      'www-authenticate': `Bearer authorization_uri="https://login.microsoftonline.com/${state.tenantId}", error="invalid_token", error_description="The authentication failed because of missing 'Authorization' header."`,
    };
    if (check.reason === 'missing')
      armError(ctx, 401, 'AuthenticationFailed', "Authentication failed. The 'Authorization' header is missing.", challenge);
    else if (check.reason === 'audience') {
      armError(
        ctx,
        401,
        'InvalidAuthenticationTokenAudience',
        `The access token has been obtained for wrong audience or resource '${check.resource ?? ''}'. It should exactly match with one of the allowed audiences 'https://management.core.windows.net/','https://management.core.windows.net','https://management.azure.com/','https://management.azure.com'.`,
      );
    } else if (check.reason === 'expired')
      armError(ctx, 401, 'ExpiredAuthenticationToken', 'The access token expiry UTC time is earlier than current UTC time.');
    else armError(ctx, 401, 'InvalidAuthenticationToken', 'The access token is invalid.');
    return undefined;
  }
  return check.token;
}

function missingApiVersion(ctx: Ctx): boolean {
  if (ctx.query['api-version']) return false;
  armError(ctx, 400, 'MissingApiVersionParameter', 'The api-version query parameter (?api-version=) is required for all requests.');
  return true;
}

function listKeys(state: FakeState, ctx: Ctx, target: ListKeysTarget): void {
  const token = authorize(state, ctx);
  if (!token) return;
  if (!ctx.query['api-version'])
    return armError(
      ctx,
      400,
      'MissingApiVersionParameter',
      'The api-version query parameter (?api-version=) is required for all requests.',
    );
  const scope = `/subscriptions/${target.subscriptionId}/resourceGroups/${target.resourceGroup}/providers/Microsoft.Storage/storageAccounts/${target.account}`;
  // ARM authorizes the scope before it looks the resource up.
  if (!state.mayListKeys(token, target.account)) {
    return armError(
      ctx,
      403,
      'AuthorizationFailed',
      `The client '${token.objectId}' with object id '${token.objectId}' does not have authorization to perform action 'Microsoft.Storage/storageAccounts/listKeys/action' over scope '${scope}' or the scope is invalid. If access was recently granted, please refresh your credentials.`,
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

interface ScaleSetTarget {
  subscriptionId: string;
  resourceGroup: string;
  name: string;
}

/**
 * GET .../Microsoft.Compute/virtualMachineScaleSets/{name}/virtualMachines
 * (Virtual Machine Scale Set VMs - List): `{ value: [VM], nextLink? }`, each
 * VM with `instanceId`, `name` ({vmss}_{instanceId}), `id` and
 * `properties.vmId`. Pages of `$top` (default: all) with a `nextLink`
 * carrying `$skiptoken`, as ARM does. Needs Microsoft.Compute/
 * virtualMachineScaleSets/virtualMachines/read (Reader on the scale set).
 */
function listScaleSetVms(state: FakeState, ctx: Ctx, target: ScaleSetTarget): void {
  const token = authorize(state, ctx);
  if (!token || missingApiVersion(ctx)) return;
  const scope = `/subscriptions/${target.subscriptionId}/resourceGroups/${target.resourceGroup}/providers/Microsoft.Compute/virtualMachineScaleSets/${target.name}`;
  if (!state.mayListScaleSet(token, target.name)) {
    return armError(
      ctx,
      403,
      'AuthorizationFailed',
      `The client '${token.objectId}' with object id '${token.objectId}' does not have authorization to perform action 'Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read' over scope '${scope}' or the scope is invalid. If access was recently granted, please refresh your credentials.`,
    );
  }
  const ss = state.scaleSets.get(target.name.toLowerCase());
  const lower = (s: string | undefined): string | undefined => s?.toLowerCase();
  if (
    !ss ||
    (ss.subscriptionId && lower(ss.subscriptionId) !== lower(target.subscriptionId)) ||
    (ss.resourceGroup && lower(ss.resourceGroup) !== lower(target.resourceGroup))
  ) {
    return armError(
      ctx,
      404,
      'ResourceNotFound',
      `The Resource 'Microsoft.Compute/virtualMachineScaleSets/${target.name}' under resource group '${target.resourceGroup}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`,
    );
  }
  const skip = Number.parseInt(ctx.query.$skiptoken ?? '0', 10) || 0;
  const top = Number.parseInt(ctx.query.$top ?? '', 10) || ss.vms.length || 1;
  const page = ss.vms.slice(skip, skip + top);
  const body: Record<string, unknown> = {
    value: page.map((vm) => ({
      name: `${ss.name}_${vm.instanceId}`,
      id: `${scope}/virtualMachines/${vm.instanceId}`,
      type: 'Microsoft.Compute/virtualMachineScaleSets/virtualMachines',
      instanceId: vm.instanceId,
      location: 'westeurope',
      properties: { vmId: vm.vmId, latestModelApplied: true, provisioningState: 'Succeeded' },
    })),
  };
  if (skip + top < ss.vms.length) {
    const next = new URL(`https://${ctx.req.headers.host ?? 'localhost'}${ctx.url.pathname}`);
    next.searchParams.set('api-version', ctx.query['api-version'] ?? '');
    next.searchParams.set('$top', String(top));
    next.searchParams.set('$skiptoken', String(skip + top));
    body.nextLink = next.toString();
  }
  sendJson(ctx.res, 200, body, { 'x-ms-request-id': randomUUID(), 'x-ms-correlation-request-id': randomUUID() });
}

const SCALE_SET_VMS =
  /^\/subscriptions\/([^/]+)\/resourcegroups\/([^/]+)\/providers\/microsoft\.compute\/virtualmachinescalesets\/([^/]+)\/virtualmachines\/?$/i;

const LIST_KEYS =
  /^\/subscriptions\/([^/]+)\/resourcegroups\/([^/]+)\/providers\/microsoft\.storage\/storageaccounts\/([^/]+)\/listkeys\/?$/i;

export function armDeps(state: FakeState): Pick<ServerDeps, 'route' | 'errorBody' | 'malformedBody' | 'notFound' | 'clientIdOf'> {
  return {
    route(req: http.IncomingMessage, url: URL) {
      const vms = SCALE_SET_VMS.exec(url.pathname);
      if (vms?.[1] && vms[2] && vms[3] && req.method === 'GET') {
        const target = {
          subscriptionId: decodeURIComponent(vms[1]),
          resourceGroup: decodeURIComponent(vms[2]),
          name: decodeURIComponent(vms[3]),
        };
        return { name: 'arm.listScaleSetVms', handle: (ctx) => listScaleSetVms(state, ctx, target) };
      }
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
        `The resource path '${ctx.url.pathname}' is not served by this fake (only storageAccounts/listKeys and virtualMachineScaleSets/virtualMachines).`,
      ),
    clientIdOf: clientIdOfBearer(state),
  };
}
