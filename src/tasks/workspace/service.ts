import { settleWithin } from '../../agent/deadline.js';
import { BACKGROUND_LIMIT_MS, LoginMemory, runLogin, type LoginDeps, type LoginOutcome } from './index.js';

/**
 * The daemon's login service: what it serves over its socket for every
 * login, with everything logins share in one object the daemon owns for its
 * life (no module state): the memory of earlier logins (child slots, plans,
 * runs per uid, in-process checks), the runs in flight per name, and the
 * users whose share side waits for the share to come back.
 */
export class LoginService {
  private readonly memory: LoginMemory;
  /** Logins in flight: concurrent logins of one user share one run (one consistent result). */
  private readonly inflight = new Map<string, Promise<LoginOutcome>>();
  /** Users whose share side was skipped while the share was unhealthy. */
  private readonly deferred = new Set<string>();

  constructor(private readonly deps: LoginDeps) {
    this.memory = new LoginMemory(deps.inProcess);
  }

  /** One login's whole work within `timeLimitMs` (see runLogin). */
  run(user: string, opts: { timeLimitMs: number; shareHealthy: boolean | undefined }): Promise<LoginOutcome> {
    return runLogin(this.deps, this.memory, user, opts);
  }

  /**
   * What the daemon runs for an IPC `login`: the whole work in the background
   * (share work only while the share is healthy), answering within
   * `deadlineMs` with the outcome, or `pending` while it carries on and logs.
   */
  async handle(user: string, opts: { deadlineMs: number; shareHealthy: boolean | undefined }): Promise<LoginOutcome> {
    const { deps } = this;
    const started = Date.now();
    let work = this.inflight.get(user);
    if (!work) {
      work = this.run(user, { timeLimitMs: BACKGROUND_LIMIT_MS, shareHealthy: opts.shareHealthy })
        .catch((err: unknown): LoginOutcome => ({
          user,
          status: 'failed',
          reason: 'internal',
          message: String(err),
          changed: false,
          durationMs: Date.now() - started,
        }))
        .then((o) => {
          if (o.share?.reason === 'share-unhealthy') this.deferred.add(user);
          else if (o.status === 'done') this.deferred.delete(user);
          return o;
        })
        .finally(() => this.inflight.delete(user));
      this.inflight.set(user, work);
    }
    // The caller's wait, but never longer than this VM's own bound (a hook
    // that could not read the config yet asks with the default).
    const first = await settleWithin(work, Math.min(opts.deadlineMs, deps.cfg.workspace.loginTimeoutMs), () => 'late' as const);
    const boundMs = deps.cfg.workspace.loginTimeoutMs;
    if (first !== 'late') return { ...first, boundMs };
    const log = deps.log.child('login');
    void work.then((o) => log.info(`${user}: finished in the background after ${o.durationMs} ms: ${o.status}: ${o.message}`));
    return {
      user,
      status: 'pending',
      reason: 'deadline',
      message: `${user}: not finished within ${opts.deadlineMs} ms; the daemon finishes it in the background and logs the result`,
      changed: false,
      durationMs: Date.now() - started,
      boundMs,
    };
  }

  /**
   * Finish the share side for users who logged in while the share was
   * unhealthy. The daemon calls this when the share-mounted check recovers.
   */
  async finishDeferred(): Promise<LoginOutcome[]> {
    const out: LoginOutcome[] = [];
    for (const user of [...this.deferred]) out.push(await this.handle(user, { deadlineMs: BACKGROUND_LIMIT_MS, shareHealthy: true }));
    return out;
  }
}
