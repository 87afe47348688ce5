import { lstat, mkdir, readdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import type http from 'node:http';
import { randomUUID } from 'node:crypto';
import type { Ctx, Route, ServerDeps } from './http.js';
import { verifySharedKey } from './sharedkey.js';
import { etag, type FakeState, type Handle, type Share } from './state.js';

/**
 * Azure Files REST, path style (`/{account}/{share}/{dir...}`), for the few
 * calls dsvm-agent makes. There is no emulator for the File service, so the
 * wire format here follows the REST docs and what @azure/storage-file-share
 * 12.31 parses (e.g. list-handles uses `<Entries><Handle>`, not the docs'
 * `<HandleList>`).
 */

const FILE_VERSION = '2025-11-05';

function xmlEscape(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c] ?? c);
}

function baseHeaders(ctx: Ctx): Record<string, string> {
  const version = ctx.req.headers['x-ms-version'];
  return {
    'x-ms-request-id': randomUUID(),
    'x-ms-version': typeof version === 'string' ? version : FILE_VERSION,
    date: new Date().toUTCString(),
  };
}

function storageError(ctx: Ctx, status: number, code: string, message: string, detail?: string): void {
  const id = randomUUID();
  const text = `${message}\nRequestId:${id}\nTime:${new Date().toISOString()}`;
  const body = `<?xml version="1.0" encoding="utf-8"?><Error><Code>${code}</Code><Message>${xmlEscape(text)}</Message>${
    detail ? `<AuthenticationErrorDetail>${xmlEscape(detail)}</AuthenticationErrorDetail>` : ''
  }</Error>`;
  ctx.res.writeHead(status, { ...baseHeaders(ctx), 'x-ms-request-id': id, 'x-ms-error-code': code, 'content-type': 'application/xml' });
  ctx.res.end(ctx.req.method === 'HEAD' ? undefined : body);
}

function sendXml(ctx: Ctx, status: number, xml: string, headers: Record<string, string> = {}): void {
  ctx.res.writeHead(status, { ...baseHeaders(ctx), 'content-type': 'application/xml', ...headers });
  ctx.res.end(`<?xml version="1.0" encoding="utf-8"?>${xml}`);
}

function sendEmpty(ctx: Ctx, status: number, headers: Record<string, string>): void {
  ctx.res.writeHead(status, { ...baseHeaders(ctx), 'content-length': '0', ...headers });
  ctx.res.end();
}

interface Target {
  account: string;
  shareName: string;
  /** Directory/file path inside the share, "/"-joined, "" for the root. */
  rel: string;
  segments: string[];
}

/** Characters Azure Files refuses in names, plus control characters. */
const BAD_CHARS = /["\\:|<>*?]/;
const badName = (s: string): boolean => BAD_CHARS.test(s) || [...s].some((c) => c.charCodeAt(0) < 0x20);

function parseTarget(url: URL): Target | 'invalid' | undefined {
  const raw = url.pathname.split('/').filter((s, i, all) => i > 0 && !(s === '' && i === all.length - 1));
  if (raw.length < 2 || !raw[0] || !raw[1]) return undefined;
  let segments: string[];
  try {
    segments = raw.slice(2).map((s) => decodeURIComponent(s));
  } catch {
    return 'invalid';
  }
  if (segments.some((s) => s === '' || s === '.' || s === '..' || badName(s))) return 'invalid';
  return { account: raw[0], shareName: raw[1], rel: segments.join('/'), segments };
}

/** A path under the share's folder, refusing anything a symlink would take outside it. */
async function realTarget(share: Share, segments: string[]): Promise<{ root: string; full: string }> {
  const root = await realpath(share.root ?? '');
  return { root, full: path.join(root, ...segments) };
}

async function insideRoot(root: string, p: string): Promise<boolean> {
  try {
    const real = await realpath(p);
    return real === root || real.startsWith(`${root}${path.sep}`);
  } catch {
    return false;
  }
}

type Kind = 'dir' | 'file' | 'missing' | 'no-parent';

async function kindOf(state: FakeState, share: Share, t: Target): Promise<Kind> {
  if (t.segments.length === 0) return 'dir';
  if (share.root) {
    const { root, full } = await realTarget(share, t.segments);
    if (!(await insideRoot(root, path.dirname(full)))) return 'no-parent';
    const parent = await stat(path.dirname(full)).catch(() => undefined);
    if (!parent?.isDirectory()) return 'no-parent';
    const st = await lstat(full).catch(() => undefined);
    if (!st) return 'missing';
    return st.isDirectory() ? 'dir' : 'file';
  }
  const parentRel = t.segments.slice(0, -1).join('/');
  if (parentRel && !share.dirs.has(parentRel)) return 'no-parent';
  if (share.dirs.has(t.rel)) return 'dir';
  const hasHandle = state.handles.some((h) => h.account === t.account && h.share === t.shareName && h.path === t.rel);
  return hasHandle ? 'file' : 'missing';
}

async function usageBytes(share: Share): Promise<number> {
  if (!share.root) return share.usageBytes;
  let total = 0;
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(p);
      else if (entry.isFile()) total += (await lstat(p)).size;
    }
  };
  await walk(share.root);
  return total;
}

function directoryHeaders(): Record<string, string> {
  const now = new Date();
  return {
    etag: etag(),
    'last-modified': now.toUTCString(),
    'x-ms-request-server-encrypted': 'true',
    'x-ms-file-permission-key': '4066528134148476695*1',
    'x-ms-file-attributes': 'Directory',
    'x-ms-file-creation-time': now.toISOString(),
    'x-ms-file-last-write-time': now.toISOString(),
    'x-ms-file-change-time': now.toISOString(),
    'x-ms-file-id': '13835128424026341376',
    'x-ms-file-parent-id': '0',
  };
}

async function createDirectory(state: FakeState, ctx: Ctx, share: Share, t: Target): Promise<void> {
  if (t.segments.length === 0)
    return storageError(ctx, 400, 'InvalidUri', 'The requested URI does not represent any resource on the server.');
  const kind = await kindOf(state, share, t);
  if (kind === 'no-parent') return storageError(ctx, 404, 'ParentNotFound', 'The specified parent path does not exist.');
  if (kind !== 'missing') return storageError(ctx, 409, 'ResourceAlreadyExists', 'The specified resource already exists.');
  if (share.root) {
    const { full } = await realTarget(share, t.segments);
    await mkdir(full);
  } else share.dirs.add(t.rel);
  sendEmpty(ctx, 201, directoryHeaders());
}

async function directoryProperties(state: FakeState, ctx: Ctx, share: Share, t: Target): Promise<void> {
  const kind = await kindOf(state, share, t);
  if (kind === 'no-parent') return storageError(ctx, 404, 'ParentNotFound', 'The specified parent path does not exist.');
  if (kind === 'missing') return storageError(ctx, 404, 'ResourceNotFound', 'The specified resource does not exist.');
  if (kind === 'file')
    return storageError(
      ctx,
      409,
      'ResourceTypeMismatch',
      'The specified resource type does not match the type of the resource in the request URI.',
    );
  sendEmpty(ctx, 200, directoryHeaders());
}

function shareProperties(ctx: Ctx, share: Share): void {
  sendEmpty(ctx, 200, {
    etag: share.etag,
    'last-modified': share.lastModified.toUTCString(),
    'x-ms-share-quota': String(share.quotaGiB),
    'x-ms-access-tier': 'TransactionOptimized',
    'x-ms-enabled-protocols': 'SMB',
    'x-ms-lease-status': 'unlocked',
    'x-ms-lease-state': 'available',
  });
}

async function shareStats(ctx: Ctx, share: Share): Promise<void> {
  sendXml(ctx, 200, `<ShareStats><ShareUsageBytes>${await usageBytes(share)}</ShareUsageBytes></ShareStats>`, {
    etag: share.etag,
    'last-modified': share.lastModified.toUTCString(),
  });
}

/** Handles the request's path covers: itself, its children, or (recursive) everything below. */
function handlesInScope(state: FakeState, t: Target, kind: Kind, recursive: boolean): Handle[] {
  return state.handles.filter((h) => {
    if (h.account !== t.account || h.share !== t.shareName) return false;
    if (kind === 'file' || h.path === t.rel) return h.path === t.rel;
    const prefix = t.rel ? `${t.rel}/` : '';
    if (!h.path.startsWith(prefix)) return false;
    return recursive || !h.path.slice(prefix.length).includes('/');
  });
}

function handleXml(h: Handle): string {
  const el = (name: string, value: string): string => `<${name}>${xmlEscape(value)}</${name}>`;
  return `<Handle>${el('HandleId', h.handleId)}<Path Encoded="false">${xmlEscape(h.path)}</Path>${el('FileId', h.fileId)}${el('ParentId', h.parentId)}${el('SessionId', h.sessionId)}${el(
    'ClientIp',
    h.clientIp,
  )}${el('ClientName', h.clientName)}${el('OpenTime', h.openTime)}${h.lastReconnectTime ? el('LastReconnectTime', h.lastReconnectTime) : ''}<AccessRightList><AccessRight>Read</AccessRight></AccessRightList></Handle>`;
}

async function listHandles(state: FakeState, ctx: Ctx, share: Share, t: Target): Promise<void> {
  const kind = await kindOf(state, share, t);
  if (kind === 'missing' || kind === 'no-parent')
    return storageError(ctx, 404, 'ResourceNotFound', 'The specified resource does not exist.');
  const all = handlesInScope(state, t, kind, ctx.req.headers['x-ms-recursive'] === 'true');
  const start = Number.parseInt(ctx.query.marker ?? '0', 10) || 0;
  const max = Number.parseInt(ctx.query.maxresults ?? '', 10) || state.listHandlesPageSize;
  const page = all.slice(start, start + max);
  const next = start + max < all.length ? String(start + max) : '';
  sendXml(
    ctx,
    200,
    `<EnumerationResults><Entries>${page.map(handleXml).join('')}</Entries><NextMarker>${next}</NextMarker></EnumerationResults>`,
  );
}

async function forceCloseHandles(state: FakeState, ctx: Ctx, share: Share, t: Target): Promise<void> {
  const handleId = ctx.req.headers['x-ms-handle-id'];
  if (typeof handleId !== 'string' || !handleId)
    return storageError(ctx, 400, 'MissingRequiredHeader', "An HTTP header that's mandatory for this request is not specified.");
  const kind = await kindOf(state, share, t);
  if (kind === 'missing' || kind === 'no-parent')
    return storageError(ctx, 404, 'ResourceNotFound', 'The specified resource does not exist.');
  const scope = handlesInScope(state, t, kind, ctx.req.headers['x-ms-recursive'] === 'true').filter(
    (h) => handleId === '*' || h.handleId === handleId,
  );
  const closable = scope.filter((h) => !h.closeFails);
  // Failures are reported once, on the first call of a marker sequence.
  const failed = ctx.query.marker ? 0 : scope.length - closable.length;
  const batch = closable.slice(0, state.forceCloseBatch);
  state.handles = state.handles.filter((h) => !batch.includes(h));
  sendEmpty(ctx, 200, {
    'x-ms-number-of-handles-closed': String(batch.length),
    'x-ms-number-of-handles-failed': String(failed),
    ...(closable.length > batch.length ? { 'x-ms-marker': `close-${batch.length}` } : {}),
  });
}

type ShareOp = (state: FakeState, ctx: Ctx, share: Share, t: Target) => Promise<void> | void;

function pickOperation(req: http.IncomingMessage, url: URL): { name: string; op: ShareOp } | undefined {
  const restype = url.searchParams.get('restype') ?? '';
  const comp = url.searchParams.get('comp') ?? '';
  const method = req.method ?? 'GET';
  if (comp === 'listhandles' && method === 'GET') return { name: 'files.listHandles', op: listHandles };
  if (comp === 'forceclosehandles' && method === 'PUT') return { name: 'files.forceCloseHandles', op: forceCloseHandles };
  if (restype === 'share' && comp === 'stats' && method === 'GET')
    return { name: 'files.shareStats', op: (_s, ctx, share) => shareStats(ctx, share) };
  if (restype === 'share' && !comp && (method === 'GET' || method === 'HEAD'))
    return { name: 'files.shareProperties', op: (_s, ctx, share) => shareProperties(ctx, share) };
  if (restype === 'directory' && !comp && method === 'PUT') return { name: 'files.createDirectory', op: createDirectory };
  if (restype === 'directory' && !comp && (method === 'GET' || method === 'HEAD'))
    return { name: 'files.directoryProperties', op: directoryProperties };
  return undefined;
}

export function filesDeps(state: FakeState): Pick<ServerDeps, 'route' | 'errorBody' | 'malformedBody' | 'notFound'> {
  return {
    route(req, url): Route | undefined {
      const picked = pickOperation(req, url);
      if (!picked) return undefined;
      return {
        name: picked.name,
        async handle(ctx) {
          const t = parseTarget(ctx.url);
          if (t === undefined)
            return storageError(ctx, 400, 'InvalidUri', 'The requested URI does not represent any resource on the server.');
          if (t === 'invalid')
            return storageError(ctx, 400, 'InvalidResourceName', 'The specifed resource name contains invalid characters.');
          const account = state.accounts.get(t.account);
          const auth = verifySharedKey(ctx.req, ctx.url, t.account, account?.keys ?? []);
          if (!auth.ok) {
            const message =
              auth.code === 'NoAuthenticationInformation'
                ? 'Server failed to authenticate the request. Please refer to the information in the www-authenticate header.'
                : 'Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.';
            return storageError(ctx, auth.code === 'NoAuthenticationInformation' ? 401 : 403, auth.code, message, auth.detail);
          }
          const share = state.findShare(t.account, t.shareName);
          if (!share) return storageError(ctx, 404, 'ShareNotFound', 'The specified share does not exist.');
          await picked.op(state, ctx, share, t);
        },
      };
    },
    errorBody: (status) => {
      const code = status === 503 ? 'ServerBusy' : status === 500 ? 'InternalError' : status === 429 ? 'ServerBusy' : `Http${status}`;
      return {
        contentType: 'application/xml',
        body: `<?xml version="1.0" encoding="utf-8"?><Error><Code>${code}</Code><Message>Injected failure (${status})</Message></Error>`,
        headers: { 'x-ms-error-code': code },
      };
    },
    malformedBody: {
      contentType: 'application/xml',
      body: '<?xml version="1.0" encoding="utf-8"?><EnumerationResults><Entries><Handle><HandleId>',
    },
    notFound: (ctx) =>
      storageError(
        ctx,
        400,
        'InvalidQueryParameterValue',
        `The operation ${ctx.req.method ?? ''} ${ctx.url.search} is not served by this fake.`,
      ),
  };
}
