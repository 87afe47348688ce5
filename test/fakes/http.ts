import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { failSpecSchema, FAKE_NAMES, type FailSpec, type FakeName, type RecordedRequest } from './types.js';

/** What a route handler gets. */
export interface Ctx {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  url: URL;
  /** Query parameters (first value of each), names as sent. */
  query: Record<string, string>;
  body: Buffer;
  record: RecordedRequest;
}

export interface Route {
  name: string;
  handle(ctx: Ctx): Promise<void> | void;
}

/** Headers worth asserting on; none of them carries a secret. */
const RECORDED_HEADERS = [
  'metadata',
  'accept',
  'content-type',
  'user-agent',
  'host',
  'x-ms-version',
  'x-ms-date',
  'x-ms-recursive',
  'x-ms-handle-id',
  'x-ms-client-request-id',
  'x-ms-file-request-intent',
];

/** Query parameters that can carry a credential (SAS signature). */
const SECRET_QUERY = new Set(['sig']);

const MAX_RECORDS = 10_000;
const MAX_BODY = 1 << 20;

export class RequestLog {
  readonly byFake: Record<FakeName, RecordedRequest[]> = { imds: [], keyVault: [], arm: [], files: [] };
  private seq = 0;

  add(record: Omit<RecordedRequest, 'seq' | 'time'>): RecordedRequest {
    const full: RecordedRequest = { seq: ++this.seq, time: new Date().toISOString(), ...record };
    const list = this.byFake[record.fake];
    list.push(full);
    if (list.length > MAX_RECORDS) list.splice(0, list.length - MAX_RECORDS);
    return full;
  }

  clear(): void {
    for (const name of FAKE_NAMES) this.byFake[name].length = 0;
  }
}

interface Rule {
  route: string;
  spec: FailSpec;
  remaining: number;
}

/** Failure rules, first match wins; `times` counts down per matching request. */
export class FailureInjector {
  private rules: Rule[] = [];

  add(route: string, spec: FailSpec): void {
    const parsed = failSpecSchema.parse(spec);
    if (!/^(\*|[a-zA-Z]+\.(\*|[a-zA-Z]+))$/.test(route)) throw new Error(`fail: bad route "${route}" (want "fake.route", "fake.*" or "*")`);
    this.rules.push({ route, spec: parsed, remaining: parsed.times ?? Number.POSITIVE_INFINITY });
  }

  take(route: string): FailSpec | undefined {
    const fake = route.split('.')[0];
    const rule = this.rules.find((r) => r.remaining > 0 && (r.route === '*' || r.route === route || r.route === `${fake}.*`));
    if (!rule) return undefined;
    rule.remaining -= 1;
    return rule.spec;
  }

  clear(): void {
    this.rules = [];
  }
}

export interface ServerDeps {
  fake: FakeName;
  log: RequestLog;
  injector: FailureInjector;
  /** Find the route for a request; undefined = `<fake>.unknown` (404). */
  route(req: http.IncomingMessage, url: URL): Route | undefined;
  /** Body sent for an injected status without an explicit body. */
  errorBody(status: number): { contentType: string; body: string; headers?: Record<string, string> };
  /** A truncated body of the fake's content type. */
  malformedBody: { contentType: string; body: string };
  /** Called for an unknown route. */
  notFound(ctx: Ctx): void;
  /** Fills record.clientId from a Bearer token, when the fake issues tokens. */
  clientIdOf?(authorization: string): string | undefined;
}

function authScheme(value: string | undefined): string {
  if (!value) return 'none';
  return value.trim().split(/\s+/)[0] ?? 'none';
}

async function readBody(req: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new Error('request body too large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Whether a rule writes its own answer (else it only delays or drops, and the route answers). */
function answersItself(f: FailSpec): boolean {
  return (
    !!f.malformed ||
    f.status !== undefined ||
    f.body !== undefined ||
    f.bodyBytes !== undefined ||
    f.contentType !== undefined ||
    f.stallMs !== undefined
  );
}

const CHUNK = 64 * 1024;

/**
 * The answer a failure rule describes. A `bodyBytes` body is streamed in
 * chunks with backpressure, so a client that stops reading (as it should,
 * past its own limit) stops the fake too, and `record.sentBytes` shows how
 * much of it the client took. A `stallMs` answer sends the head and the first
 * bytes, then waits before the rest: slow bodies, not only slow headers.
 */
async function sendInjected(deps: ServerDeps, failure: FailSpec, res: http.ServerResponse, record: RecordedRequest): Promise<void> {
  const status = failure.status ?? 200;
  let payload: { contentType: string; body: string; headers?: Record<string, string> } =
    failure.malformed || (failure.status === undefined && failure.bodyBytes !== undefined) ? deps.malformedBody : deps.errorBody(status);
  if (!failure.malformed && failure.body !== undefined) {
    payload =
      typeof failure.body === 'string'
        ? { contentType: 'text/plain', body: failure.body }
        : { contentType: 'application/json', body: JSON.stringify(failure.body) };
  }
  const start = Buffer.from(payload.body);
  const total = Math.max(failure.bodyBytes ?? start.length, start.length);
  res.writeHead(status, {
    'content-type': failure.contentType ?? payload.contentType,
    ...(payload.headers ?? {}),
    ...(failure.headers ?? {}),
  });
  let sent = 0;
  let closed = false;
  res.on('close', () => {
    closed = true;
    record.sentBytes = sent;
  });
  const write = async (chunk: Buffer): Promise<void> => {
    if (closed) return;
    sent += chunk.length;
    if (!res.write(chunk)) await new Promise<void>((resolve) => res.once('drain', resolve).once('close', resolve));
  };
  const head = failure.stallMs ? start.subarray(0, 16) : Buffer.alloc(0);
  await write(head);
  if (failure.stallMs) await sleep(failure.stallMs);
  await write(start.subarray(head.length));
  const filler = Buffer.alloc(CHUNK, 'x');
  while (!closed && sent < total) await write(filler.subarray(0, Math.min(CHUNK, total - sent)));
  if (!closed) res.end();
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function handle(deps: ServerDeps, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://fake.invalid');
  const query: Record<string, string> = {};
  const recordedQuery: Record<string, string> = {};
  for (const [key, value] of url.searchParams) {
    if (!(key in query)) query[key] = value;
    recordedQuery[key] = SECRET_QUERY.has(key.toLowerCase()) ? '<redacted>' : value;
  }
  const headers: Record<string, string> = {};
  for (const name of RECORDED_HEADERS) {
    const value = req.headers[name];
    if (typeof value === 'string') headers[name] = value;
  }
  const route = deps.route(req, url);
  const routeName = route?.name ?? `${deps.fake}.unknown`;
  const authorization = req.headers.authorization;
  const record = deps.log.add({
    fake: deps.fake,
    route: routeName,
    method: req.method ?? 'GET',
    path: url.pathname,
    query: recordedQuery,
    headers,
    auth: authScheme(authorization),
    ...(authorization && deps.clientIdOf ? { clientId: deps.clientIdOf(authorization) } : {}),
  });
  res.on('finish', () => {
    record.status = res.statusCode;
  });
  const body = await readBody(req);
  const ctx: Ctx = { req, res, url, query, body, record };

  const failure = deps.injector.take(routeName);
  if (failure) {
    record.injected = true;
    if (failure.delayMs) await sleep(failure.delayMs);
    if (failure.drop) {
      req.socket.destroy();
      return;
    }
    if (answersItself(failure)) {
      await sendInjected(deps, failure, res, record);
      return;
    }
  }
  if (!route) {
    deps.notFound(ctx);
    return;
  }
  await route.handle(ctx);
}

export type AnyServer = http.Server | https.Server;

/** Start one fake on an ephemeral port; resolves to its base URL. */
export async function listen(
  deps: ServerDeps,
  host: string,
  tls?: { key: string; cert: string },
): Promise<{ server: AnyServer; url: string }> {
  const listener = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    handle(deps, req, res).catch((err: unknown) => {
      // A fake bug must show as a server error, not as a hung client.
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`fake ${deps.fake} error: ${(err as Error).message}`);
      } else res.destroy();
    });
  };
  const server = tls ? https.createServer({ key: tls.key, cert: tls.cert }, listener) : http.createServer(listener);
  // Clients keep connections alive; close() must not wait for them.
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const hostPart = host.includes(':') ? `[${host}]` : host;
  return { server, url: `${tls ? 'https' : 'http'}://${hostPart}:${port}` };
}

export async function closeServer(server: AnyServer): Promise<void> {
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

export function sendJson(res: http.ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
  res.end(JSON.stringify(value));
}

export function requestId(): string {
  return randomUUID();
}
