// Children run in their own process groups (so a deadline reaches their
// grandchildren), which takes them out of execa's clean-up on exit: the
// runner must still leave nothing running when the agent itself ends.
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleForNode } from '../../helpers/bundle.js';
import { alive, gone } from '../../helpers/processes.js';

const module = (rel: string): string => JSON.stringify(fileURLToPath(new URL(rel, import.meta.url)));

// An agent-like process: one command running (a shell and its grandchild)
// when it exits, in one of three ways.
const script = `
const { createRunner } = await import(${module('../../../src/agent/runner.ts')});
const { createLogger } = await import(${module('../../../src/agent/log.ts')});
const { Redactor } = await import(${module('../../../src/agent/redact.ts')});
const [mode, pidFile] = process.argv.slice(2);
if (mode === 'handled') {
  // The daemon's shape: its own SIGTERM listener, an orderly stop, then exit.
  process.on('SIGTERM', () => setTimeout(() => process.exit(0), 200));
}
const redactor = new Redactor();
const run = createRunner({ log: createLogger({ redactor, write: () => {} }), redactor });
void run({ file: 'sh', args: ['-c', 'sleep 30 & echo $$ $! > ' + pidFile + '.tmp; mv ' + pidFile + '.tmp ' + pidFile + '; wait'], timeoutMs: 60000 });
const { existsSync } = await import('node:fs');
while (!existsSync(pidFile)) await new Promise((r) => setTimeout(r, 20));
if (mode === 'exit') process.exit(0);
process.stdout.write('ready\\n');
setInterval(() => undefined, 1000);
`;

t.test('no child or grandchild outlives the agent', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'runner-exit-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  // Bundled and run by plain node, as the agent is: the tsx loader adds signal listeners of its own.
  const file = path.join(dir, 'agent-like.mjs');
  await bundleForNode(script, dir, file);
  const cases = [
    { name: 'process.exit() while a command runs', mode: 'exit', code: 0, signal: null },
    { name: 'SIGTERM that nothing handles', mode: 'unhandled', code: null, signal: 'SIGTERM' },
    { name: 'SIGTERM the daemon handles (orderly stop, then exit)', mode: 'handled', code: 0, signal: null },
  ];
  for (const c of cases) {
    const pidFile = path.join(dir, `${c.mode}.pids`);
    // Through env(1) without NODE_OPTIONS: tap injects its process-info hook into every node it sees
    // spawned, and that hook listens for SIGTERM too, which an agent does not.
    const p = spawn('env', ['-u', 'NODE_OPTIONS', process.execPath, file, c.mode, pidFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) p.kill('SIGTERM');
    });
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
      p.on('close', (cd, s) => resolve([cd, s])),
    );
    t.same([code, signal], [c.code, c.signal], `${c.name}: how the agent ended (stderr: ${err.slice(0, 300)})`);
    if (!existsSync(pidFile)) {
      t.fail(`${c.name}: the command never started`);
      continue;
    }
    const [shell, grandchild] = readFileSync(pidFile, 'utf8').trim().split(' ').map(Number) as [number, number];
    t.teardown(() => {
      for (const pid of [shell, grandchild]) if (alive(pid)) process.kill(pid, 'SIGKILL');
    });
    t.ok(await gone(shell), `${c.name}: the child is gone`);
    t.ok(await gone(grandchild), `${c.name}: the grandchild is gone`);
  }
});
