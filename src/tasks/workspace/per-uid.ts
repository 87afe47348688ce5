/**
 * At most one login's work per uid at a time, per daemon context. The name a
 * login arrives with is not the account: NSS maps MALLORY, Mallory and
 * CONTOSO\mallory to one uid, so keying in-flight work by name let one user
 * start a run per spelling; with a stalled share of their own each run held
 * a Node child slot until its deadline, and the slots every other user's
 * first login needs were gone. Keyed by the resolved uid, a user holds at
 * most one slot, however many spellings or sessions they open.
 */
const inFlight = new WeakMap<object, Map<number, Promise<unknown>>>();

/**
 * Run `work` for `uid`, or, when a run for that uid is already in flight,
 * wait for that one and return its result (`shared: true`): the same folders
 * and link, so one result serves both.
 */
export async function oncePerUid<T>(scope: object, uid: number, work: () => Promise<T>): Promise<{ result: T; shared: boolean }> {
  let running = inFlight.get(scope);
  if (!running) inFlight.set(scope, (running = new Map()));
  const current = running.get(uid) as Promise<T> | undefined;
  if (current) return { result: await current, shared: true };
  const map = running;
  const mine = work().finally(() => {
    if (map.get(uid) === mine) map.delete(uid);
  });
  map.set(uid, mine);
  return { result: await mine, shared: false };
}
