import { chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';

/**
 * The daemon's local control socket: newline-delimited JSON, one request and
 * one response per connection, over a Unix stream socket in /run/dsvm-agent/.
 *
 * Who may talk to it is decided by the file system, not by the protocol.
 * Node has no API for SO_PEERCRED, so the daemon cannot ask the kernel who
 * connected; instead the socket is created mode 0600 and owned by root, and
 * connect(2) on a Unix socket needs write permission on the socket file, so
 * only root (the pam_exec hook, a root JupyterHub, an admin) gets through.
 * The directory stays 0755 so `status` can tell "daemon down" (ENOENT,
 * ECONNREFUSED) from "not allowed" (EACCES).
 *
 * This module is on the login hook's hot path: node built-ins only.
 */

/** What a client may ask. `deadlineMs` is how long the caller will wait for the answer. */
export type IpcRequest = { op: 'login'; user: string; service?: string; deadlineMs: number } | { op: 'status' };

export type IpcResponse = { ok: true; result: unknown } | { ok: false; error: string };

/** The subset of the agent's logger the server needs. */
export interface IpcLog {
  warn(message: string, meta?: Record<string, unknown>): void;
  debug(message: string, meta?: Record<string, unknown>): void;
}

/** A request line longer than this is refused: a client cannot make the daemon buffer without bound. */
export const MAX_LINE_BYTES = 64 * 1024;
/** Extra time a caller waits, past its bound, only to hand over a request it has not sent yet. */
export const SEND_GRACE_MS = 150;
/** A connected client that sends no complete line within this is dropped. */
export const REQUEST_IDLE_MS = 10_000;
const MAX_USER_LENGTH = 1024;
const MAX_DEADLINE_MS = 60_000;

/** An IPC failure with an errno-style code callers branch on. */
export class IpcError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'IpcError';
    this.code = code;
  }
}

/** True when the error means "no daemon is listening" (so the caller should do the work itself). */
export function isDaemonAbsent(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'ENOTSOCK' || code === 'EACCES' || code === 'EPERM';
}

/** Validate one decoded line; returns the request or a message saying what is wrong. */
export function parseRequest(value: unknown): IpcRequest | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'request must be a JSON object';
  const r = value as Record<string, unknown>;
  if (r.op === 'status') return { op: 'status' };
  if (r.op !== 'login') return `unknown op ${JSON.stringify(r.op)} (known: login, status)`;
  if (typeof r.user !== 'string' || r.user.length === 0 || r.user.length > MAX_USER_LENGTH) {
    return `login: "user" must be a non-empty string of at most ${MAX_USER_LENGTH} characters`;
  }
  if (typeof r.deadlineMs !== 'number' || !Number.isFinite(r.deadlineMs) || r.deadlineMs < 0 || r.deadlineMs > MAX_DEADLINE_MS) {
    return `login: "deadlineMs" must be a number of milliseconds between 0 and ${MAX_DEADLINE_MS}`;
  }
  if (r.service !== undefined && (typeof r.service !== 'string' || r.service.length > 64)) {
    return 'login: "service" must be a string of at most 64 characters';
  }
  return {
    op: 'login',
    user: r.user,
    deadlineMs: r.deadlineMs,
    ...(typeof r.service === 'string' ? { service: r.service } : {}),
  };
}

/** Remove a socket file left by a dead daemon; refuse to steal a live one or delete a non-socket. */
async function removeStaleSocket(socketFile: string): Promise<void> {
  let st;
  try {
    st = await lstat(socketFile);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!st.isSocket()) {
    throw new IpcError('EEXIST', `${socketFile} exists and is not a socket: remove it by hand (the agent does not delete other files)`);
  }
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.createConnection(socketFile);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) throw new IpcError('EADDRINUSE', `another dsvm-agent daemon is listening on ${socketFile}: stop it first`);
  await unlink(socketFile);
}

/**
 * Serve requests on `socketFile` until closed. Each connection carries one
 * request line and gets one response line; connections are independent, so a
 * client that stalls or sends garbage costs only its own connection.
 */
export async function serveIpc(
  socketFile: string,
  handler: (req: IpcRequest) => Promise<unknown>,
  log: IpcLog,
): Promise<{ close(): Promise<void> }> {
  await mkdir(path.dirname(socketFile), { recursive: true, mode: 0o755 });
  await chmod(path.dirname(socketFile), 0o755);
  await removeStaleSocket(socketFile);

  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    serveConnection(socket, handler, log);
  });
  server.maxConnections = 256;

  // bind(2) creates the socket file with the process umask; a tight umask
  // around the (synchronous) bind closes the window before the chmod below.
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const previous = process.umask(0o177);
    try {
      server.listen(socketFile, () => {
        server.off('error', reject);
        resolve();
      });
    } finally {
      process.umask(previous);
    }
  });
  await chmod(socketFile, 0o600);
  server.on('error', (err) => log.warn(`control socket ${socketFile}: ${err.message}`));

  return {
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function serveConnection(socket: net.Socket, handler: (req: IpcRequest) => Promise<unknown>, log: IpcLog): void {
  let buffered = '';
  let answered = false;
  const reply = (res: IpcResponse): void => {
    if (answered) return;
    answered = true;
    clearTimeout(idle);
    if (!socket.destroyed) socket.end(`${JSON.stringify(res)}\n`);
  };
  const idle = setTimeout(() => {
    log.debug('control socket: client sent no request in time; dropped');
    socket.destroy();
  }, REQUEST_IDLE_MS);
  socket.setEncoding('utf8');
  socket.on('error', () => {
    /* a client that went away is not the daemon's problem */
  });
  socket.on('close', () => clearTimeout(idle));
  socket.on('data', (chunk: string) => {
    if (answered) return;
    buffered += chunk;
    const nl = buffered.indexOf('\n');
    if (nl < 0) {
      if (Buffer.byteLength(buffered) > MAX_LINE_BYTES) reply({ ok: false, error: `request longer than ${MAX_LINE_BYTES} bytes` });
      return;
    }
    const line = buffered.slice(0, nl);
    buffered = '';
    socket.pause();
    let decoded: unknown;
    try {
      decoded = JSON.parse(line);
    } catch {
      reply({ ok: false, error: 'request is not valid JSON' });
      return;
    }
    const req = parseRequest(decoded);
    if (typeof req === 'string') {
      reply({ ok: false, error: req });
      return;
    }
    clearTimeout(idle);
    handler(req).then(
      (result) => reply({ ok: true, result: result ?? null }),
      (err: unknown) => reply({ ok: false, error: err instanceof Error ? err.message : String(err) }),
    );
  });
}

/**
 * Send one request and wait at most `timeoutMs` for the answer (plus at most
 * SEND_GRACE_MS if the request itself is not handed over by then). Rejects at
 * once with code ENOENT/ECONNREFUSED when no daemon listens (see
 * {@link isDaemonAbsent}), and with code ETIMEDOUT when the bound passes.
 */
export function callIpc(socketFile: string, req: IpcRequest, timeoutMs: number): Promise<IpcResponse> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    let settled = false;
    const received: Buffer[] = [];
    let receivedBytes = 0;
    const socket = net.createConnection(socketFile);
    const finish = (err: Error | null, res?: IpcResponse): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(res as IpcResponse);
    };
    let sent = false;
    const timedOut = (): void => finish(new IpcError('ETIMEDOUT', `the daemon did not answer on ${socketFile} within ${timeoutMs} ms`));
    // A request not yet handed over when the bound passes gets SEND_GRACE_MS
    // more: on an overloaded VM the daemon then still finishes the work.
    let timer = setTimeout(
      () => {
        if (sent) timedOut();
        else timer = setTimeout(timedOut, SEND_GRACE_MS);
      },
      Math.max(0, timeoutMs),
    );
    // Written at once: the socket queues it until connect(2) completes, and
    // the callback runs once the kernel has it (the request is handed over).
    socket.write(`${JSON.stringify(req)}\n`, (err) => {
      if (err) return;
      sent = true;
      if (Date.now() - started >= timeoutMs) timedOut();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => finish(new IpcError(err.code ?? 'EIO', `${socketFile}: ${err.message}`)));
    // Raw bytes, decoded once at the newline: no string decoder to load in
    // the login hook's short-lived process.
    socket.on('data', (chunk: Buffer) => {
      received.push(chunk);
      receivedBytes += chunk.length;
      if (chunk.indexOf(10) < 0) {
        if (receivedBytes > MAX_LINE_BYTES * 16) finish(new IpcError('EPROTO', `${socketFile}: answer too long`));
        return;
      }
      const text = Buffer.concat(received).toString('utf8');
      try {
        const res = JSON.parse(text.slice(0, text.indexOf('\n'))) as IpcResponse;
        if (typeof res !== 'object' || res === null || typeof res.ok !== 'boolean') throw new Error('bad shape');
        finish(null, res);
      } catch {
        finish(new IpcError('EPROTO', `${socketFile}: the daemon's answer is not valid JSON`));
      }
    });
    socket.on('close', () => finish(new IpcError('EPROTO', `${socketFile}: the daemon closed the connection without answering`)));
  });
}
