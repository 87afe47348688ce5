/**
 * At most one login's work per uid at a time (`running`: the LoginMemory's
 * runs in flight, one per daemon). The name a
 * login arrives with is not the account: NSS maps MALLORY, Mallory and
 * CONTOSO\mallory to one uid, so keying in-flight work by name let one user
 * start a run per spelling; with a stalled share of their own each run held
 * a Node child slot until its deadline, and the slots every other user's
 * first login needs were gone. Keyed by the resolved uid, a user holds at
 * most one slot, however many spellings or sessions they open.
 */

/**
 * Run `work` for `uid`, or, when a run for that uid is already in flight,
 * wait for that one and return its result (`shared: true`): the same folders
 * and link, so one result serves both.
 */
export async function oncePerUid<T>(
  running: Map<number, Promise<unknown>>,
  uid: number,
  work: () => Promise<T>,
): Promise<{ result: T; shared: boolean }> {
  const current = running.get(uid) as Promise<T> | undefined;
  if (current) return { result: await current, shared: true };
  const mine = work().finally(() => {
    if (running.get(uid) === mine) running.delete(uid);
  });
  running.set(uid, mine);
  return { result: await mine, shared: false };
}
