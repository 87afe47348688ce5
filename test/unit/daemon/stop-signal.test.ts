import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleForNode } from '../../helpers/bundle.js';

const runModule = fileURLToPath(new URL('../../../src/app/commands/run.ts', import.meta.url));
const runnerModule = fileURLToPath(new URL('../../../src/agent/runner.ts', import.meta.url));
const logModule = fileURLToPath(new URL('../../../src/agent/log.ts', import.meta.url));
const redactModule = fileURLToPath(new URL('../../../src/agent/redact.ts', import.meta.url));

// A process shaped like the daemon: a child running through the runner (execa)
// when SIGTERM arrives. It must reach its own orderly stop, not die of the signal.
const script = `
const { stopSignal } = await import(${JSON.stringify(runModule)});
const { createRunner } = await import(${JSON.stringify(runnerModule)});
const stopped = stopSignal();
const { createLogger } = await import(${JSON.stringify(logModule)});
const { Redactor } = await import(${JSON.stringify(redactModule)});
const redactor = new Redactor();
const run = createRunner({ log: createLogger({ redactor, write: () => {} }), redactor });
const child = run({ file: 'sleep', args: ['5'], timeoutMs: 10000 });
setTimeout(() => process.stdout.write('ready\\n'), 300);
const sig = await stopped;
process.stdout.write('stopping on ' + sig + '\\n');
await new Promise((r) => setTimeout(r, 200));
process.stdout.write('stopped\\n');
process.exit(0);
`;

t.test('SIGTERM while a child runs: the daemon still gets to stop in order', async (t) => {
  // Bundled and run by plain node, as the daemon is: under the tsx loader a
  // second copy of signal-exit changes its listener count and hides the bug.
  const dir = await mkdtemp(path.join(tmpdir(), 'dsvm-stop-signal-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'daemon-like.mjs');
  await bundleForNode(script, dir, file);
  const p = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    if (out.includes('ready') && !p.killed) p.kill('SIGTERM');
  });
  p.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => p.on('close', (c, s) => resolve([c, s])));
  t.equal(signal, null, `not killed by the signal (stderr: ${err.slice(0, 300)})`);
  t.equal(code, 0);
  t.match(out, /stopping on SIGTERM\nstopped\n/);
});
