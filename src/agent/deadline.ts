/**
 * `work`'s result, or `late()`'s when `ms` pass first. The one way the agent
 * races work against a clock (a check's timeout, a repair's, a login
 * answered as pending, a scale-in step's budget, a child that outlives
 * SIGKILL): the timer is cleared as soon as either side settles, so none is
 * left behind to hold the process, and `work` itself carries on (what a late
 * result means is the caller's to say). `late` may throw, or return a
 * rejected promise, to make lateness an error. With `unref` the clock does
 * not keep the process alive on its own (the login hook, whose process
 * lives only for its work).
 */
export async function settleWithin<T, L>(
  work: Promise<T>,
  ms: number,
  late: () => L | PromiseLike<L>,
  opts: { unref?: boolean } = {},
): Promise<T | L> {
  let timer: NodeJS.Timeout | undefined;
  const clock = new Promise<L>((resolve, reject) => {
    timer = setTimeout(
      () => {
        try {
          resolve(late());
        } catch (err) {
          reject(err);
        }
      },
      Math.max(0, ms),
    );
    if (opts.unref) timer.unref();
  });
  try {
    return await Promise.race([work, clock]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Wait `ms`, or less when `signal` aborts first (the daemon's stop, a
 * Terminate): the caller looks at the signal afterwards and decides what
 * an early end means. The timer never holds the process open.
 */
export function waitUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    timer.unref();
    signal.addEventListener('abort', done, { once: true });
  });
}
