import t from 'tap';
import { createLogger } from '../../../src/agent/log.js';
import { Redactor } from '../../../src/agent/redact.js';
import { createRunner } from '../../../src/agent/runner.js';

function setup() {
  const redactor = new Redactor();
  const lines: string[] = [];
  const log = createLogger({ level: 'debug', redactor, journald: true, write: (l) => lines.push(l) });
  return { run: createRunner({ log, redactor }), redactor, lines };
}

t.test('a child that ignores SIGTERM is killed with SIGKILL at the deadline', async (t) => {
  const { run } = setup();
  const started = Date.now();
  const r = await run({ file: 'sh', args: ['-c', 'trap "" TERM; sleep 30'], timeoutMs: 300 });
  const elapsed = Date.now() - started;
  t.equal(r.timedOut, true);
  t.equal(r.signal, 'SIGKILL');
  t.ok(elapsed < 3000, `returned in ${elapsed} ms`);
});

t.test('stdin delivery: the input reaches the child and never argv', async (t) => {
  const { run, lines, redactor } = setup();
  redactor.add('s3cret-pass');
  const r = await run({ file: 'sh', args: ['-c', 'read line; echo "got ${#line} chars"'], input: 's3cret-pass\n' });
  t.equal(r.exitCode, 0);
  t.equal(r.stdout.trim(), 'got 11 chars');
  t.notMatch(lines.join('\n'), /s3cret-pass/, 'secret not logged');
  t.match(lines.join('\n'), /stdin/, 'stdin size is logged');
});

t.test('exit codes come back as data', async (t) => {
  const { run } = setup();
  const cases = [
    { name: 'success', args: ['-c', 'exit 0'], exitCode: 0 },
    { name: 'failure', args: ['-c', 'echo oops >&2; exit 3'], exitCode: 3, stderr: 'oops\n' },
    { name: 'signal', args: ['-c', 'kill -9 $$'], exitCode: null, signal: 'SIGKILL' },
  ];
  for (const c of cases) {
    const r = await run({ file: 'sh', args: c.args });
    t.equal(r.exitCode, c.exitCode, `${c.name}: exit code`);
    if (c.stderr) t.equal(r.stderr, c.stderr, `${c.name}: stderr`);
    if (c.signal) t.equal(r.signal, c.signal, `${c.name}: signal`);
    t.equal(r.timedOut, false, `${c.name}: not timed out`);
  }
});

t.test('a missing program is reported, not thrown', async (t) => {
  const { run } = setup();
  const r = await run({ file: '/nonexistent/program' });
  t.ok(r.startError, 'start error set');
  t.not(r.exitCode, 0);
});

t.test("children do not inherit the agent's environment", async (t) => {
  const { run } = setup();
  process.env.DSVM_TEST_SECRET_ENV = 'do-not-leak';
  const r = await run({ file: 'env' });
  delete process.env.DSVM_TEST_SECRET_ENV;
  t.notMatch(r.stdout, /do-not-leak/);
  t.match(r.stdout, /LC_ALL=C/);
});

t.test('argv is logged at debug with secrets redacted', async (t) => {
  const { run, lines, redactor } = setup();
  redactor.add('hunter2-token');
  await run({ file: 'echo', args: ['user=alice', 'token=hunter2-token'] });
  const text = lines.join('\n');
  t.match(text, /<7>run: exec echo user=alice token=\[redacted\]/);
  t.notMatch(text, /hunter2-token/);
});
