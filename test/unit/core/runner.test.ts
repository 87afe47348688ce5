import t from 'tap';
import { readFileSync } from 'node:fs';
import { access, mkdtemp, rm } from 'node:fs/promises';
import { getPriority, tmpdir } from 'node:os';
import path from 'node:path';
import { createLogger } from '../../../src/agent/log.js';
import { Redactor } from '../../../src/agent/redact.js';
import { createRunner } from '../../../src/agent/runner.js';
import { alive, gone } from '../../helpers/processes.js';

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
  t.ok(elapsed < 1500, `returned in ${elapsed} ms`);
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

/** Whether pid still runs; a zombie waiting for PID 1 to reap it counts as gone. */
t.test('the deadline kills the whole process tree, grandchildren included', async (t) => {
  const { run } = setup();
  const dir = await mkdtemp(path.join(tmpdir(), 'runner-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const pidFile = path.join(dir, 'grandchild.pid');
  // The shell ignores SIGTERM and its grandchild holds our stdout pipe open,
  // as a mount helper stuck on a dead share would.
  const script = `trap "" TERM; sleep 30 & echo $! > ${pidFile}; wait`;
  const started = Date.now();
  const r = await run({ file: 'sh', args: ['-c', script], timeoutMs: 300 });
  const elapsed = Date.now() - started;
  const grandchild = Number(readFileSync(pidFile, 'utf8').trim());
  t.teardown(() => {
    if (alive(grandchild)) process.kill(grandchild, 'SIGKILL');
  });
  t.equal(r.timedOut, true);
  t.equal(r.signal, 'SIGKILL', 'the signal the child really died of');
  t.ok(elapsed < 1500, `returned in ${elapsed} ms, not at the 2 s backstop`);
  t.ok(await gone(grandchild), `grandchild ${grandchild} is gone`);
});

t.test('stdin still reaches a child in its own process group, and output is kept on time-out', async (t) => {
  const { run } = setup();
  const r = await run({ file: 'sh', args: ['-c', 'read line; echo "got $line"; sleep 30'], input: 'hello\n', timeoutMs: 300 });
  t.equal(r.timedOut, true);
  t.equal(r.stdout, 'got hello\n');
  const ok = await run({ file: 'sh', args: ['-c', 'echo "pgid $(ps -o pgid= -p $$ | tr -d " ") pid $$"'] });
  const m = /pgid (\d+) pid (\d+)/.exec(ok.stdout);
  t.ok(m && m[1] === m[2], `the child leads its own process group (${ok.stdout.trim()})`);
});

t.test("the request's signal kills the child's whole process group at once; one aborted before the start starts nothing", async (t) => {
  const { run } = setup();
  const dir = await mkdtemp(path.join(tmpdir(), 'runner-cancel-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const pidFile = path.join(dir, 'grandchild');
  const stop = new AbortController();
  const started = Date.now();
  const pending = run({ file: 'sh', args: ['-c', `sleep 30 & echo $! > ${pidFile}; wait`], timeoutMs: 20_000, signal: stop.signal });
  let grandchild = 0;
  for (const end = Date.now() + 5000; !grandchild && Date.now() < end; await new Promise((r) => setTimeout(r, 20))) {
    grandchild = Number(readFileSync(pidFile, { encoding: 'utf8', flag: 'a+' }).trim()) || 0;
  }
  t.ok(grandchild > 0, 'the grandchild runs');
  stop.abort(new Error('stopping'));
  const r = await pending;
  t.ok(Date.now() - started < 5000, `returned in ${Date.now() - started} ms, not at the 20 s deadline`);
  t.equal(r.cancelled, true, 'cancelled');
  t.equal(r.timedOut, false, 'not a timeout');
  t.equal(r.signal, 'SIGKILL');
  t.ok(await gone(grandchild), "the child's own child is killed with its group");
  const again = await run({ file: 'sh', args: ['-c', `touch ${path.join(dir, 'ran')}`], signal: stop.signal });
  t.equal(again.cancelled, true);
  t.equal(again.exitCode, null);
  await t.rejects(access(path.join(dir, 'ran')), 'a cancelled request never starts');
});

t.test('nice: the child and what it starts run that many nice levels below the agent', async (t) => {
  const { run } = setup();
  const own = getPriority();
  // The child waits for its stdin, which is written only after the runner has set its priority.
  const argv = ['-c', 'read x; nice; sh -c nice'];
  const bg = await run({ file: 'sh', args: argv, input: '\n', nice: 10 });
  t.equal(bg.exitCode, 0);
  t.same(bg.stdout.trim().split('\n').map(Number), [Math.min(19, own + 10), Math.min(19, own + 10)], 'child and grandchild');
  const fg = await run({ file: 'sh', args: argv, input: '\n' });
  t.same(fg.stdout.trim().split('\n').map(Number), [own, own], "otherwise the agent's own");
});

t.test('nice: a program that is not there is still a start error', async (t) => {
  const { run } = setup();
  const r = await run({ file: 'dsvm-agent-no-such-program', nice: 10 });
  t.match(r.startError, /ENOENT/);
  t.equal(r.exitCode, null);
});
