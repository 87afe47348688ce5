import type { AddressInfo } from 'node:net';
import { configError } from '../../agent/errors.js';
import { nodeHttp } from '../../agent/node-http.js';

/** HOST:PORT from health.listen ("[::1]:8642" for IPv6). */
export function parseListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  return { host: listen.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(listen.slice(i + 1)) };
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

export interface HealthServerHandlers {
  health(): Record<string, unknown>;
  metrics(): string;
}

/**
 * The health endpoint. Every answer comes from memory (the checks' cached
 * results), so it stays fast while checks run; nothing here awaits I/O.
 * Only GET /health and GET /metrics exist; there is nothing to write.
 */
export async function startHealthServer(
  listen: string,
  opts: { allowNonLoopback: boolean },
  handlers: HealthServerHandlers,
): Promise<{ url: string; close(): Promise<void> }> {
  const { host, port } = parseListen(listen);
  // The schema refuses this too; the server does not trust its caller.
  if (!isLoopback(host) && !opts.allowNonLoopback) {
    throw configError(`health.listen: "${host}" is not a loopback address`, {
      fix: 'use 127.0.0.1:PORT, or set health.allowNonLoopback: true deliberately',
    });
  }
  const server = nodeHttp().createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    try {
      if (path === '/health') {
        const body = JSON.stringify(handlers.health());
        // Always 200: the extension reads non-2xx as Unknown; Unhealthy is said in the body.
        res
          .writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' })
          .end(req.method === 'HEAD' ? undefined : body);
        return;
      }
      if (path === '/metrics') {
        res
          .writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' })
          .end(req.method === 'HEAD' ? undefined : handlers.metrics());
        return;
      }
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /health or /metrics\n');
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`internal error: ${(err as Error).message}\n`);
    }
  });
  // Bound what a slow or idle client can hold on a loopback port.
  server.requestTimeout = 5000;
  server.headersTimeout = 5000;
  server.keepAliveTimeout = 5000;
  server.maxHeadersCount = 50;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'EADDRINUSE'
          ? configError(`health.listen ${listen}: the port is in use`, {
              fix: 'stop the other process or choose another port in health.listen',
            })
          : err,
      ),
    );
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${shownHost}:${addr.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
