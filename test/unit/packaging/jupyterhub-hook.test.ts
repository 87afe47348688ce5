// The shipped JupyterHub pre_spawn_hook (packaging/jupyterhub/dsvm_agent_hook.py)
// run by python3 against the agent's real control socket server
// (serveIpc, src/agent/ipc.ts): it asks a running daemon directly, in the
// daemon's own protocol, and falls back to `dsvm-agent login` (here a script
// that records its argv) only when no daemon listens. It never raises.
import { execa } from 'execa';
import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { serveIpc, type IpcRequest } from '../../../src/agent/ipc.js';

const HOOK_DIR = fileURLToPath(new URL('../../../packaging/jupyterhub', import.meta.url));
const quiet = { warn: () => undefined, debug: () => undefined };

/** Imports the hook as the hub config does and runs one call; prints its return value as JSON. */
const DRIVER = String.raw`
import asyncio, json, logging, sys
sys.path.insert(0, sys.argv[1])
import dsvm_agent_hook as hook
args = json.loads(sys.argv[2])
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(message)s")
hook.DAEMON_SOCKET = args["socket"]
hook.DSVM_AGENT = args["agent"]
hook.TIMEOUT_SECONDS = args["timeout"]
class User:
    def __init__(self, name): self._name = name
    @property
    def name(self):
        if self._name is None: raise RuntimeError("the hub has no user here")
        return self._name
class Spawner:
    def __init__(self, name): self.user, self.log = User(name), logging.getLogger("hub")
async def main():
    if args.get("entry") == "hook":
        return await hook.dsvm_agent_pre_spawn_hook(Spawner(args["user"]))
    return await hook.prepare_workspace(args["user"], timeout=args["timeout"])
print(json.dumps(asyncio.run(main())))
`;

interface Tree {
  dir: string;
  sock: string;
  agent: string;
  agentArgv: string;
}

async function tree(): Promise<Tree> {
  const dir = await mkdtemp(path.join(tmpdir(), 'dsvm-jh-hook-'));
  const sock = path.join(dir, 'run', 'agent.sock');
  await mkdir(path.dirname(sock));
  const agentArgv = path.join(dir, 'agent-argv');
  const agent = path.join(dir, 'dsvm-agent');
  // Stands in for /usr/sbin/dsvm-agent doing the work itself (no daemon).
  await writeFile(
    agent,
    `#!/bin/sh\nprintf '%s\\n' "$@" >${agentArgv}\necho '{"via":"local","user":"bob","status":"done","message":"bob: made here"}'\n`,
  );
  await chmod(agent, 0o755);
  return { dir, sock, agent, agentArgv };
}

async function runHook(
  tr: Tree,
  opts: { user: string | null; timeout?: number; entry?: 'hook' },
): Promise<{ result: unknown; log: string; ms: number; agentRan: string | undefined }> {
  const t0 = Date.now();
  const r = await execa(
    'python3',
    ['-c', DRIVER, HOOK_DIR, JSON.stringify({ socket: tr.sock, agent: tr.agent, timeout: opts.timeout ?? 5, ...opts })],
    { reject: false, timeout: 20_000 },
  );
  const ms = Date.now() - t0;
  if (r.exitCode !== 0) throw new Error(`the hook's driver exited ${r.exitCode}: ${r.stderr}`);
  const agentRan = await readFile(tr.agentArgv, 'utf8').catch(() => undefined);
  return { result: JSON.parse(r.stdout) as unknown, log: r.stderr, ms, agentRan };
}

/** A daemon that died and left its socket: a listener killed with SIGKILL leaves it behind. */
async function staleSocket(sock: string): Promise<void> {
  const child = spawn(process.execPath, ['-e', 'require("net").createServer().listen(process.argv[1], () => console.log("up"))', sock], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise((r) => child.stdout.once('data', r));
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
}

t.test('daemon up: asked over its socket, the agent binary never started', async (t) => {
  const cases: {
    name: string;
    answer: (req: IpcRequest) => Promise<unknown>;
    want: Record<string, unknown> | null;
    log: RegExp;
    entry?: 'hook';
  }[] = [
    {
      name: 'done',
      answer: async () => ({ user: 'Jean.Dupont', status: 'done', message: 'link made', changed: true, durationMs: 7, boundMs: 3000 }),
      want: { via: 'daemon', status: 'done', message: 'link made' },
      log: /^INFO dsvm-agent login Jean\.Dupont: done via daemon in \d+ ms: link made$/m,
    },
    {
      name: "done, through the hub's entry (the module's socket path)",
      answer: async () => ({ user: 'Jean.Dupont', status: 'done', message: 'link made' }),
      want: null,
      log: /^INFO dsvm-agent login Jean\.Dupont: done via daemon in \d+ ms: link made$/m,
      entry: 'hook',
    },
    {
      name: 'pending (the daemon finishes in the background)',
      answer: async () => ({ user: 'Jean.Dupont', status: 'pending', reason: 'deadline', message: 'not finished within 2900 ms' }),
      want: { via: 'daemon', status: 'pending' },
      log: /^INFO dsvm-agent login Jean\.Dupont: not finished yet via daemon in \d+ ms .*not finished within 2900 ms$/m,
    },
    {
      name: 'refused by the daemon (ok: false)',
      answer: async () => {
        throw new Error('this daemon was started without login handling');
      },
      want: { via: 'daemon', status: 'failed', reason: 'daemon-error' },
      log: /^WARNING dsvm-agent login Jean\.Dupont: failed via daemon in \d+ ms: the daemon refused the request: this daemon was started without login handling$/m,
    },
  ];
  for (const c of cases) {
    const tr = await tree();
    t.teardown(() => rm(tr.dir, { recursive: true, force: true }));
    const seen: IpcRequest[] = [];
    const server = await serveIpc(
      tr.sock,
      (req) => {
        seen.push(req);
        return c.answer(req);
      },
      quiet,
    );
    const r = await runHook(tr, { user: 'Jean.Dupont', ...(c.entry ? { entry: c.entry } : {}) });
    await server.close();
    t.match(r.result, c.want, `${c.name}: the outcome`);
    t.match(r.log, c.log, `${c.name}: the hub's log line`);
    // The daemon's own parser accepted it (serveIpc refuses anything else before the handler).
    t.same(
      seen,
      [{ op: 'login', user: 'Jean.Dupont', service: 'jupyterhub', deadlineMs: 4900 }],
      `${c.name}: one request, the name as given`,
    );
    t.equal(r.agentRan, undefined, `${c.name}: no agent process`);
  }
});

t.test('no daemon listening: the agent binary does the work', async (t) => {
  const cases: { name: string; make: (sock: string) => Promise<void> }[] = [
    { name: 'no socket file', make: async () => undefined },
    { name: "a dead daemon's socket (connection refused)", make: staleSocket },
    { name: 'a regular file where the socket should be', make: (sock) => writeFile(sock, '') },
  ];
  for (const c of cases) {
    const tr = await tree();
    t.teardown(() => rm(tr.dir, { recursive: true, force: true }));
    await c.make(tr.sock);
    const r = await runHook(tr, { user: 'bob' });
    t.match(r.result, { via: 'local', status: 'done' }, `${c.name}: the agent's outcome`);
    t.equal(r.agentRan, 'login\n--user\nbob\n--json\n', `${c.name}: argv, no shell`);
    t.match(r.log, /^INFO dsvm-agent login bob: done via local in \d+ ms: bob: made here$/m, `${c.name}: the log line`);
  }
});

t.test('never raises, never waits past its bound', async (t) => {
  await t.test('the daemon takes the request and does not answer', async (t) => {
    const tr = await tree();
    t.teardown(() => rm(tr.dir, { recursive: true, force: true }));
    const server = await serveIpc(tr.sock, () => new Promise(() => undefined), quiet);
    const r = await runHook(tr, { user: 'bob', timeout: 0.5 });
    await server.close();
    t.equal(r.result, null, 'no outcome');
    t.match(r.log, /^WARNING dsvm-agent login bob: no answer within 0\.5 s; spawning anyway$/m);
    t.equal(r.agentRan, undefined, 'no second try through the binary: the daemon has the request');
    // python3's own start is most of it; a hook that waited for the daemon twice would take > 1 s more.
    t.ok(r.ms < 3000, `returned in ${r.ms} ms`);
  });

  await t.test('a garbled answer: pending, as `dsvm-agent login` takes it', async (t) => {
    const tr = await tree();
    t.teardown(() => rm(tr.dir, { recursive: true, force: true }));
    const server = net.createServer((s) => {
      s.on('error', () => undefined);
      s.once('data', () => s.end('not json\n'));
    });
    await new Promise<void>((r) => server.listen(tr.sock, r));
    const r = await runHook(tr, { user: 'bob' });
    await new Promise((r) => server.close(r));
    t.match(r.result, { via: 'daemon', status: 'pending' });
    t.match(r.log, /not finished yet via daemon .*not valid JSON/);
    t.equal(r.agentRan, undefined);
  });

  await t.test('the daemon closes the connection without answering: pending, no second try', async (t) => {
    const tr = await tree();
    t.teardown(() => rm(tr.dir, { recursive: true, force: true }));
    const server = net.createServer((s) => {
      s.on('error', () => undefined);
      s.once('data', () => s.end());
    });
    await new Promise<void>((r) => server.listen(tr.sock, r));
    const r = await runHook(tr, { user: 'bob' });
    await new Promise((r) => server.close(r));
    t.match(r.result, { via: 'daemon', status: 'pending' });
    t.match(r.log, /not finished yet via daemon .*did not come \(the daemon closed the connection\)/);
    t.equal(r.agentRan, undefined);
  });

  await t.test('agent missing and no daemon', async (t) => {
    const tr = await tree();
    t.teardown(() => rm(tr.dir, { recursive: true, force: true }));
    await rm(tr.agent);
    const r = await runHook(tr, { user: 'bob', entry: 'hook' });
    t.equal(r.result, null);
    t.match(r.log, /^WARNING dsvm-agent login bob failed after \d+ ms: .*No such file or directory.*; spawning anyway$/m);
  });

  await t.test('the spawner itself throws', async (t) => {
    const tr = await tree();
    t.teardown(() => rm(tr.dir, { recursive: true, force: true }));
    const r = await runHook(tr, { user: null, entry: 'hook' });
    t.equal(r.result, null, 'the hook returned');
    t.match(r.log, /^WARNING dsvm-agent pre_spawn_hook: the hub has no user here$/m);
  });
});
