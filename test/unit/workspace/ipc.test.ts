import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { callIpc, isDaemonAbsent, MAX_LINE_BYTES, parseRequest, serveIpc, type IpcRequest } from '../../../src/agent/ipc.js';

const quiet = { warn: () => undefined, debug: () => undefined };

async function socketPath(): Promise<string> {
  return path.join(await mkdtemp(path.join(tmpdir(), 'dsvm-ipc-')), 'run', 'agent.sock');
}

/** A socket file whose daemon died: a listener killed with SIGKILL leaves it behind. */
async function staleSocket(sock: string): Promise<void> {
  await mkdir(path.dirname(sock), { recursive: true });
  const child = spawn(process.execPath, ['-e', 'require("net").createServer().listen(process.argv[1], () => console.log("up"))', sock], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise((r) => child.stdout.once('data', r));
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
}

/** Send raw bytes and collect what the server answers until it closes. */
function raw(sock: string, data: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const c = net.createConnection(sock, () => c.write(data));
    c.setEncoding('utf8');
    c.on('data', (d: string) => (got += d));
    c.on('close', () => resolve(got));
    c.on('error', reject);
  });
}

t.test('parseRequest', async (t) => {
  const cases: { name: string; input: unknown; want: unknown }[] = [
    { name: 'status', input: { op: 'status' }, want: { op: 'status' } },
    {
      name: 'login',
      input: { op: 'login', user: 'alice', deadlineMs: 2900, service: 'sshd' },
      want: { op: 'login', user: 'alice', deadlineMs: 2900, service: 'sshd' },
    },
    { name: 'unknown op', input: { op: 'rm' }, want: /unknown op/ },
    { name: 'not an object', input: [1], want: /JSON object/ },
    { name: 'empty user', input: { op: 'login', user: '', deadlineMs: 1 }, want: /"user"/ },
    { name: 'missing deadline', input: { op: 'login', user: 'a' }, want: /deadlineMs/ },
    { name: 'deadline too long', input: { op: 'login', user: 'a', deadlineMs: 3_600_000 }, want: /deadlineMs/ },
  ];
  for (const c of cases) {
    const r = parseRequest(c.input);
    if (c.want instanceof RegExp) t.match(r, c.want, c.name);
    else t.same(r, c.want, c.name);
  }
});

t.test('round trip, socket mode, stale socket removal', async (t) => {
  const sock = await socketPath();
  const seen: IpcRequest[] = [];
  const server = await serveIpc(sock, async (req) => (seen.push(req), { echo: req.op }), quiet);
  t.equal((await stat(sock)).mode & 0o777, 0o600, 'socket is 0600');
  t.equal((await stat(path.dirname(sock))).mode & 0o777, 0o755, 'directory is 0755');
  t.same(await callIpc(sock, { op: 'status' }, 2000), { ok: true, result: { echo: 'status' } });
  t.same(await callIpc(sock, { op: 'login', user: 'alice', deadlineMs: 100 }, 2000), { ok: true, result: { echo: 'login' } });
  t.same(seen[1], { op: 'login', user: 'alice', deadlineMs: 100 });
  await t.rejects(
    serveIpc(sock, async () => 1, quiet),
    /another dsvm-agent daemon is listening/,
    'a live socket is not stolen',
  );
  await server.close();
  await staleSocket(sock);
  t.ok((await stat(sock)).isSocket(), 'a stale socket file is there');
  const again = await serveIpc(sock, async () => 'fresh', quiet);
  t.same(await callIpc(sock, { op: 'status' }, 2000), { ok: true, result: 'fresh' });
  await again.close();
});

t.test('refuses to delete a file that is not a socket', async (t) => {
  const sock = await socketPath();
  await serveIpc(sock, async () => 1, quiet).then((s) => s.close());
  await writeFile(sock, 'not a socket');
  await t.rejects(
    serveIpc(sock, async () => 1, quiet),
    /not a socket/,
  );
});

t.test('errors and bad clients', async (t) => {
  const sock = await socketPath();
  let release: () => void = () => undefined;
  const server = await serveIpc(
    sock,
    async (req) => {
      if (req.op === 'login' && req.user === 'boom') throw new Error('handler failed');
      if (req.op === 'login' && req.user === 'never') return new Promise(() => undefined);
      if (req.op === 'login' && req.user === 'slow') await new Promise<void>((r) => (release = r));
      return 'ok';
    },
    quiet,
  );
  t.teardown(() => server.close());

  const cases: { name: string; send: string; want: RegExp }[] = [
    { name: 'garbage line', send: 'hello\n', want: /"ok":false.*not valid JSON/ },
    { name: 'unknown op', send: '{"op":"x"}\n', want: /unknown op/ },
    { name: 'handler throws', send: '{"op":"login","user":"boom","deadlineMs":5}\n', want: /"ok":false,"error":"handler failed"/ },
    { name: 'over-long line', send: 'x'.repeat(MAX_LINE_BYTES + 10), want: /longer than/ },
  ];
  for (const c of cases) t.match(await raw(sock, c.send), c.want, c.name);

  // One client stalls (connected, nothing sent; another waits on a slow handler): others are served at once.
  const idle = net.createConnection(sock);
  const slow = callIpc(sock, { op: 'login', user: 'slow', deadlineMs: 5 }, 5000);
  const t0 = Date.now();
  t.same(await callIpc(sock, { op: 'status' }, 2000), { ok: true, result: 'ok' });
  t.ok(Date.now() - t0 < 1000, 'served while others stall');
  release();
  t.same(await slow, { ok: true, result: 'ok' });
  idle.destroy();

  // A handler that never answers: the caller still returns within its bound.
  const t1 = Date.now();
  await t.rejects(callIpc(sock, { op: 'login', user: 'never', deadlineMs: 5 }, 300), { code: 'ETIMEDOUT' });
  const took = Date.now() - t1;
  t.ok(took >= 290 && took < 800, `timed out after ${took} ms (bound 300)`);
});

t.test('no daemon: rejects fast with a code that means "do it yourself"', async (t) => {
  const sock = await socketPath();
  const cases: { name: string; setup: () => Promise<void>; code: string }[] = [
    { name: 'no socket file', setup: async () => undefined, code: 'ENOENT' },
    {
      name: 'socket file without a listener',
      setup: () => staleSocket(sock),
      code: 'ECONNREFUSED',
    },
  ];
  for (const c of cases) {
    await c.setup();
    const t0 = Date.now();
    const err = await callIpc(sock, { op: 'status' }, 5000).catch((e: unknown) => e);
    t.match(err, { code: c.code }, c.name);
    t.ok(isDaemonAbsent(err), `${c.name}: isDaemonAbsent`);
    t.ok(Date.now() - t0 < 500, `${c.name}: fast`);
  }
});
