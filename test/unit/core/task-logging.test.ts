// Every line logged during a task names that task: its own lines through the
// context's logger and the lines of the commands it runs, while work outside
// the task (the daemon's checks) keeps its own names. A task gets the very
// context object it was given: tasks key per-run facts on it.
import t from 'tap';
import { permanent } from '../../../src/agent/errors.js';
import { createRunner } from '../../../src/agent/runner.js';
import { planTasks, runTasks, type Task, type TaskContext } from '../../../src/agent/task.js';
import { makeTestContext } from '../../helpers/context.js';

const backoff = { initialMs: 1, factor: 1, maxDelayMs: 1, maxAttempts: 1, maxElapsedMs: 1000 };

/** A task that logs through the context and runs one real command. */
function tinyTask(id: string, seen: TaskContext[]): Task {
  return {
    id,
    description: id,
    async check(ctx) {
      seen.push(ctx);
      ctx.log.info('looking at the thing');
      await ctx.run({ file: 'echo', args: ['probe'] });
      return { changes: [] };
    },
    apply: async () => undefined,
  };
}

t.test('runTasks and planTasks: task lines and command lines carry the task id', async (t) => {
  for (const [name, drive] of [
    ['runTasks', (tasks: Task[], ctx: TaskContext) => runTasks(tasks, ctx, { backoff })],
    ['planTasks', (tasks: Task[], ctx: TaskContext) => planTasks(tasks, ctx)],
  ] as const) {
    const tc = await makeTestContext();
    tc.ctx.run = createRunner({ log: tc.log, redactor: tc.ctx.redactor });
    const seen: TaskContext[] = [];
    await drive([tinyTask('kdc-probe', seen), tinyTask('share-mount', seen)], tc.ctx);
    const lines = tc.logLines.join('\n');
    for (const id of ['kdc-probe', 'share-mount']) {
      t.match(lines, new RegExp(`<6>${id}: looking at the thing`), `${name}: ${id}'s own line names it`);
      t.match(lines, new RegExp(`<7>${id}: exec echo probe`), `${name}: ${id}'s command line names it`);
      t.match(lines, new RegExp(`<7>${id}: done echo exit=0`), `${name}: ${id}'s command result names it`);
    }
    t.notMatch(lines, /(agent|run): (looking|exec|done)/, `${name}: no task line shows as agent: or run:`);
    t.ok(
      seen.every((c) => c === tc.ctx),
      `${name}: each task gets the context object itself`,
    );
  }
});

t.test('work outside a task keeps its own name while a task runs', async (t) => {
  const tc = await makeTestContext();
  tc.ctx.run = createRunner({ log: tc.log, redactor: tc.ctx.redactor });
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => (release = r));
  const slow: Task = {
    id: 'domain-join',
    description: 'slow',
    async check(ctx) {
      await gate;
      ctx.log.info('joined');
      return { changes: [] };
    },
    apply: async () => undefined,
  };
  const running = runTasks([slow], tc.ctx, { backoff });
  // A daemon check running at the same time, on the same context.
  tc.ctx.log.info('check tick');
  await tc.ctx.run({ file: 'echo', args: ['outside'] });
  release();
  await running;
  const lines = tc.logLines.join('\n');
  t.match(lines, /<6>agent: check tick/);
  t.match(lines, /<7>run: exec echo outside/);
  t.match(lines, /<6>domain-join: joined/);
});

t.test('lastError in the state is redacted: a child may echo a secret into it', async (t) => {
  const tc = await makeTestContext();
  const secret = 'Join-Secret-In-Stderr-77';
  tc.ctx.redactor.add(secret);
  const leaky: Task = {
    id: 'domain-join',
    description: 'leaky',
    check: async () => {
      throw permanent(`adcli join: Couldn't authenticate with password ${secret}`, { fix: `not ${secret}` });
    },
    apply: async () => undefined,
  };
  const [outcome] = await runTasks([leaky], tc.ctx, { backoff });
  t.equal(outcome?.status, 'failed');
  const lastError = tc.ctx.state.tasks['domain-join']?.lastError ?? '';
  t.match(lastError, /Couldn't authenticate with password \[redacted\]/);
  t.notOk(JSON.stringify(tc.ctx.state).includes(secret), 'no secret anywhere in the state');
  t.notOk(tc.logLines.join('\n').includes(secret), 'nor in the logs');
});
