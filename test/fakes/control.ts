import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ZodError } from 'zod';
import { FAKE_NAMES, type FailSpec, type FakeName, type RecordedRequest, type Seed } from './types.js';

/** What the control API drives; `Fakes` implements it. */
export interface Controllable {
  seed(seed: Seed): void;
  fail(route: string, spec: FailSpec): void;
  reset(): void;
  requests: Record<FakeName, RecordedRequest[]>;
  summary(): Record<string, unknown>;
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8').trim();
  return text ? JSON.parse(text) : {};
}

function reply(res: http.ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(`${JSON.stringify(value)}\n`);
}

/**
 * HTTP control API, so a lab test in another network namespace (or a shell
 * script with curl) can drive fakes it did not start:
 *   POST /seed      body: Seed                      → {"ok":true}
 *   POST /fail      body: {"route": "...", ...FailSpec} → {"ok":true}
 *   POST /reset                                      → {"ok":true}
 *   GET  /requests[?fake=imds&route=imds.token]     → {"imds":[...],...} or [...]
 *   GET  /state                                      → non-secret state summary
 *   GET  /health                                     → {"ok":true}
 * It holds no secrets in its answers but can seed them: it listens where the
 * fakes do (loopback), for the same trust boundary.
 */
async function handle(target: Controllable, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://control.invalid');
  const key = `${req.method ?? 'GET'} ${url.pathname.replace(/\/+$/, '') || '/'}`;
  switch (key) {
    case 'POST /seed':
      target.seed((await readJson(req)) as Seed);
      return reply(res, 200, { ok: true });
    case 'POST /fail': {
      const { route, ...spec } = (await readJson(req)) as { route?: unknown } & FailSpec;
      if (typeof route !== 'string') return reply(res, 400, { error: 'body needs "route": "fake.route" | "fake.*" | "*"' });
      target.fail(route, spec);
      return reply(res, 200, { ok: true });
    }
    case 'POST /reset':
      target.reset();
      return reply(res, 200, { ok: true });
    case 'GET /requests': {
      const fake = url.searchParams.get('fake');
      const route = url.searchParams.get('route');
      if (fake && !(FAKE_NAMES as readonly string[]).includes(fake)) return reply(res, 400, { error: `unknown fake "${fake}"` });
      const lists = fake ? [target.requests[fake as FakeName]] : FAKE_NAMES.map((n) => target.requests[n]);
      if (fake || route)
        return reply(
          res,
          200,
          lists.flat().filter((r) => !route || r.route === route),
        );
      return reply(res, 200, target.requests);
    }
    case 'GET /state':
      return reply(res, 200, target.summary());
    case 'GET /health':
      return reply(res, 200, { ok: true });
    default:
      return reply(res, 404, { error: `no control endpoint ${key}` });
  }
}

export async function startControl(target: Controllable, host: string): Promise<{ server: http.Server; url: string }> {
  const server = http.createServer((req, res) => {
    handle(target, req, res).catch((err: unknown) => {
      const message =
        err instanceof ZodError
          ? err.issues.map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message)).join('; ')
          : (err as Error).message;
      reply(res, 400, { error: message });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return { server, url: `http://${host.includes(':') ? `[${host}]` : host}:${port}` };
}
