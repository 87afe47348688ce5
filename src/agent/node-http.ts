import { createRequire } from 'node:module';

/**
 * `node:http` and `node:https`, loaded with require() rather than `import`.
 * An ES import of a built-in builds its namespace by reading every export,
 * and since Node 22 `node:http` exports WebSocket, CloseEvent and
 * MessageEvent as lazy getters that load undici (with http2, tls and zlib):
 * about 10 MB resident on Node 24 for a daemon that only serves /health and
 * talks to IMDS. require() returns the module object and reads no getter.
 * Measured by bench/daemon.ts.
 */
const load = createRequire(import.meta.url);

export const nodeHttp = (): typeof import('node:http') => load('node:http') as typeof import('node:http');
export const nodeHttps = (): typeof import('node:https') => load('node:https') as typeof import('node:https');
