import t from 'tap';
import { settleWithin } from '../../../src/agent/deadline.js';

const after = <T>(ms: number, value: T): Promise<T> => new Promise((resolve) => setTimeout(() => resolve(value), ms));

t.test('settleWithin: the work, or what late gives, and no timer left behind', async (t) => {
  t.equal(await settleWithin(after(5, 'done'), 1000, () => 'late'), 'done', 'work first');
  t.equal(await settleWithin(after(1000, 'done'), 10, () => 'late'), 'late', 'clock first');
  await t.rejects(
    settleWithin(Promise.reject(new Error('boom')), 1000, () => 'late'),
    /boom/,
    'a failing work fails',
  );
  await t.rejects(
    settleWithin(after(1000, 'done'), 10, () => {
      throw new Error('too slow');
    }),
    /too slow/,
    'late may throw',
  );
  await t.rejects(
    settleWithin(after(1000, 'done'), 10, () => Promise.reject(new Error('refused'))),
    /refused/,
    'or reject',
  );
  t.equal(await settleWithin(after(5, 'done'), -5, () => 'late'), 'late', 'a negative budget is already spent');
  // A settled race clears its clock: nothing keeps the event loop alive for the budget's length.
  const timers = (): number =>
    (process as unknown as { getActiveResourcesInfo(): string[] }).getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  const before = timers();
  await settleWithin(Promise.resolve('now'), 60_000, () => 'late');
  t.equal(timers(), before, 'no timer of its own left pending');
  // unref: while the work runs, the clock alone does not keep the process alive (the login hook's bound).
  const never = new Promise<string>(() => undefined);
  const held = settleWithin(never, 30, () => 'late');
  t.equal(timers(), before + 1, 'a plain clock holds the event loop');
  const loose = settleWithin(never, 30, () => 'late', { unref: true });
  t.equal(timers(), before + 1, 'an unref clock does not');
  t.same(await Promise.all([held, loose]), ['late', 'late'], 'both still answer at the bound');
});
