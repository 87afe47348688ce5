import { randomBytes } from 'node:crypto';
import type http from 'node:http';
import { sendJson, type Ctx, type Route, type ServerDeps } from './http.js';
import type { FakeState, Identity } from './state.js';

/**
 * Azure Instance Metadata Service: managed-identity tokens, instance metadata
 * and scheduled events, with IMDS's own error bodies (flat JSON, not ARM's).
 */

function requireMetadata(ctx: Ctx, flatError: boolean): boolean {
  if (ctx.req.headers.metadata === 'true') return true;
  // Token endpoint errors are OAuth-shaped; the other IMDS endpoints put the text in "error".
  if (flatError) sendJson(ctx.res, 400, { error: 'Bad request. Required metadata header not specified' });
  else sendJson(ctx.res, 400, { error: 'invalid_request', error_description: 'Required metadata header not specified' });
  return false;
}

function oauthError(ctx: Ctx, status: number, description: string): void {
  sendJson(ctx.res, status, { error: 'invalid_request', error_description: description });
}

type IdentityChoice = { identity: Identity | undefined } | { error: string };

/** Which identity a token request names, following IMDS's rules. */
function pickIdentity(state: FakeState, query: Record<string, string>): IdentityChoice {
  const clientId = query.client_id;
  const objectId = query.object_id ?? query.principal_id;
  const resourceId = query.msi_res_id ?? query.mi_res_id;
  if (state.permissive) {
    return { identity: undefined };
  }
  const all = [...state.identities.values()];
  let found: Identity | undefined;
  if (clientId) found = state.identityFor(clientId);
  else if (objectId) found = all.find((i) => i.objectId.toLowerCase() === objectId.toLowerCase());
  else if (resourceId) found = all.find((i) => i.resourceId?.toLowerCase() === resourceId.toLowerCase());
  else {
    found = all.find((i) => i.systemAssigned);
    if (!found) {
      const userAssigned = all.filter((i) => !i.systemAssigned);
      if (userAssigned.length > 1)
        return {
          error: 'Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request',
        };
      found = userAssigned[0];
    }
  }
  return found ? { identity: found } : { error: 'Identity not found' };
}

function token(state: FakeState, ctx: Ctx): void {
  if (!requireMetadata(ctx, false)) return;
  const { query } = ctx;
  if (!query['api-version']) return oauthError(ctx, 400, "Required query variable 'api-version' is missing");
  const resource = query.resource;
  if (!resource) return oauthError(ctx, 400, 'Required audience parameter not specified');
  const pick = pickIdentity(state, query);
  if ('error' in pick) return oauthError(ctx, 400, pick.error);
  const clientId = pick.identity?.clientId ?? query.client_id ?? 'system';
  const objectId = pick.identity?.objectId ?? '00000000-0000-4000-8000-0000000000aa';
  const now = Math.floor(Date.now() / 1000);
  const expiresOn = now + state.tokenLifetimeSeconds;
  const accessToken = randomBytes(32).toString('base64url');
  state.tokens.set(accessToken, { clientId, objectId, resource, expiresOn });
  ctx.record.clientId = clientId;
  // IMDS sends every number as a string.
  sendJson(ctx.res, 200, {
    access_token: accessToken,
    client_id: clientId,
    expires_in: String(state.tokenLifetimeSeconds),
    expires_on: String(expiresOn),
    ext_expires_in: String(state.tokenLifetimeSeconds),
    not_before: String(now),
    refresh_token: '',
    resource,
    token_type: 'Bearer',
  });
}

function instance(state: FakeState, ctx: Ctx): void {
  if (!requireMetadata(ctx, true)) return;
  if (!ctx.query['api-version']) {
    sendJson(ctx.res, 400, {
      error: 'Bad request. api-version was not specified in the request. For more information refer to aka.ms/azureimds',
      'newest-versions': ['2021-02-01'],
    });
    return;
  }
  // /metadata/instance[/compute[/osProfile/computerName ...]]: walk into the document.
  const parts = ctx.url.pathname.replace(/\/+$/, '').split('/').slice(3).filter(Boolean);
  let node: unknown = state.instance;
  for (const part of parts) {
    if (node && typeof node === 'object' && part in node) node = (node as Record<string, unknown>)[part];
    else {
      sendJson(ctx.res, 404, { error: 'Not found' });
      return;
    }
  }
  if (ctx.query.format === 'text') {
    if (node !== null && typeof node === 'object') {
      sendJson(ctx.res, 400, { error: "Bad request. Query parameter 'format' is invalid for this category. Only json is supported." });
      return;
    }
    ctx.res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
    ctx.res.end(String(node));
    return;
  }
  sendJson(ctx.res, 200, node);
}

function scheduledEvents(state: FakeState, ctx: Ctx): void {
  if (!requireMetadata(ctx, true)) return;
  if (!ctx.query['api-version']) {
    sendJson(ctx.res, 400, {
      error: 'Bad request. api-version was not specified in the request. For more information refer to aka.ms/azureimds',
      'newest-versions': ['2020-07-01'],
    });
    return;
  }
  sendJson(ctx.res, 200, { DocumentIncarnation: state.documentIncarnation, Events: state.events });
}

function approve(state: FakeState, ctx: Ctx): void {
  if (!requireMetadata(ctx, true)) return;
  let ids: string[];
  try {
    const parsed = JSON.parse(ctx.body.toString('utf8')) as { StartRequests?: Array<{ EventId?: unknown }> };
    if (!Array.isArray(parsed.StartRequests)) throw new Error('no StartRequests');
    ids = parsed.StartRequests.map((r) => {
      if (typeof r?.EventId !== 'string') throw new Error('EventId');
      return r.EventId;
    });
  } catch {
    sendJson(ctx.res, 400, { error: 'Bad request. Request body is not valid. Expected {"StartRequests":[{"EventId":"..."}]}' });
    return;
  }
  ctx.record.body = { EventIds: ids };
  let changed = false;
  for (const id of ids) {
    state.approvals.push({ EventId: id, time: new Date().toISOString() });
    // Approval lets the platform start the event at once (scheduled-events doc).
    const event = state.events.find((e) => e.EventId === id);
    if (event && event.EventStatus === 'Scheduled') {
      event.EventStatus = 'Started';
      event.NotBefore = '';
      changed = true;
    }
  }
  if (changed) state.documentIncarnation += 1;
  ctx.res.writeHead(200);
  ctx.res.end();
}

export function imdsDeps(state: FakeState): Pick<ServerDeps, 'route' | 'errorBody' | 'malformedBody' | 'notFound'> {
  const routes: Record<string, Route> = {
    token: { name: 'imds.token', handle: (ctx) => token(state, ctx) },
    instance: { name: 'imds.instance', handle: (ctx) => instance(state, ctx) },
    events: { name: 'imds.scheduledEvents', handle: (ctx) => scheduledEvents(state, ctx) },
    approve: { name: 'imds.scheduledEventsApprove', handle: (ctx) => approve(state, ctx) },
  };
  return {
    route(req: http.IncomingMessage, url: URL) {
      // MSAL lower-cases the path and appends "/", the IMDS docs do not: accept both.
      const path = url.pathname.toLowerCase().replace(/\/+$/, '');
      if (path === '/metadata/identity/oauth2/token' && req.method === 'GET') return routes.token;
      if ((path === '/metadata/instance' || path.startsWith('/metadata/instance/')) && req.method === 'GET') return routes.instance;
      if (path === '/metadata/scheduledevents') {
        if (req.method === 'GET') return routes.events;
        if (req.method === 'POST') return routes.approve;
      }
      return undefined;
    },
    errorBody: (status) => ({
      contentType: 'application/json',
      body: JSON.stringify({
        error: status === 429 ? 'too_many_requests' : 'server_error',
        error_description: `Injected failure (${status})`,
      }),
    }),
    malformedBody: { contentType: 'application/json', body: '{"access_token":"' },
    notFound: (ctx) => sendJson(ctx.res, 404, { error: 'Not found' }),
  };
}
