import { readFile } from 'node:fs/promises';
import type { Config } from '../../agent/config-schema.js';
import type { Logger } from '../../agent/log.js';
import type { Paths } from '../../agent/paths.js';
import type { Runner } from '../../agent/runner.js';
import { resolveAccount } from './account.js';
import { ensureHomeLink, homeLinkInPlace, type HomeReport } from './home.js';
import { InProcessChecks } from './in-process.js';
import { mountPoints, planUserLinks, type Account, type UserLinksPlan } from './plan.js';
import { oncePerUid } from './per-uid.js';
import { ensureShareFolders, shareFoldersState, type ShareReport } from './share.js';

/**
 * The per-login work: `<workspace.root>/<folder>/<notebooks>` on the share and
 * `$HOME/<homeLink>` pointing to it. See docs/login.md for the whole design;
 * the two rules that shape this file:
 * - the share is only ever touched by children with a SIGKILL deadline;
 * - $HOME is only ever touched by children running as the user.
 */

export { folderNameFor, checkName } from './names.js';
export { planUserLinks, type Account, type UserLinksPlan } from './plan.js';
export { exitCodeForOutcome } from './exit-code.js';

/** What the daemon (or the local fallback) needs; a TaskContext fits. */
export interface LoginDeps {
  cfg: Config;
  paths: Paths;
  run: Runner;
  log: Logger;
  /** The Node binary that runs the small child programs (default: this process's). */
  nodeBinary?: string;
  /** Clock for the NSS reuse window (tests). */
  now?: () => number;
  /** The in-process checks (tests give one reading another mountinfo); one per daemon otherwise. */
  inProcess?: InProcessChecks;
}

export interface StepOutcome {
  state: 'ok' | 'created' | 'skipped' | 'refused' | 'failed';
  changes: string[];
  warnings: string[];
  /** Why a step was skipped (share-unhealthy, share-not-mounted, ...). */
  reason?: string;
}

/** The result of one login, as `login --json` prints it and the IPC answer carries it. */
export interface LoginOutcome {
  /** The name as asked (PAM_USER or --user). */
  user: string;
  /**
   * done: both sides in place. partial: $HOME done, share skipped or failed (retry later).
   * skipped: nothing to do for this account by design. refused: something is in the way and was left alone.
   * failed: nothing could be done. pending: still running in the daemon, finished in the background.
   */
  status: 'done' | 'partial' | 'skipped' | 'refused' | 'failed' | 'pending';
  reason?: string;
  message: string;
  account?: { name: string; uid: number; home: string };
  folder?: string;
  share?: StepOutcome;
  home?: StepOutcome;
  changed: boolean;
  durationMs: number;
  /** The answering daemon's workspace.loginTimeoutMs, so a hook that started without it can cache it. */
  boundMs?: number;
}

/** Caps for the children: generous in the daemon (work finishes in the background), the remaining bound in the hook. */
const NSS_CAP_MS = 10_000;
const CHILD_CAP_MS = 20_000;
/** How long the daemon lets one login run in total before giving up on it. */
export const BACKGROUND_LIMIT_MS = 45_000;

function shareStep(r: ShareReport): StepOutcome {
  const state: StepOutcome['state'] =
    r.state === 'ok' ? 'ok' : r.state === 'created' ? 'created' : r.state === 'refused' ? 'refused' : 'failed';
  return { state, changes: r.changes, warnings: r.warnings, ...(r.state === 'root-missing' ? { reason: 'root-missing' } : {}) };
}

function homeStep(r: HomeReport): StepOutcome {
  const state: StepOutcome['state'] =
    r.state === 'ok' ? 'ok' : r.state === 'created' ? 'created' : r.state === 'blocked' ? 'refused' : 'failed';
  return { state, changes: r.changes, warnings: r.warnings, ...(r.state === 'home-missing' ? { reason: 'home-missing' } : {}) };
}

/**
 * At most this many Node children at once per daemon: fifty first logins at
 * the same moment must not start a hundred Node processes on a small VM.
 * The fast path starts none; a queued child's deadline counts from its start.
 */
const MAX_NODE_CHILDREN = 4;
const nodeSlots = new WeakMap<object, { active: number; waiting: (() => void)[] }>();

async function withNodeSlot<T>(deps: LoginDeps, work: () => Promise<T>): Promise<T> {
  let slots = nodeSlots.get(deps);
  if (!slots) nodeSlots.set(deps, (slots = { active: 0, waiting: [] }));
  const s = slots;
  if (s.active >= MAX_NODE_CHILDREN) await new Promise<void>((resolve) => s.waiting.push(resolve));
  else s.active++;
  try {
    return await work();
  } finally {
    const next = s.waiting.shift();
    if (next) next();
    else s.active--;
  }
}

/** Whether the share side should be skipped now, and why. */
async function shareSkipReason(deps: LoginDeps, shareHealthy: boolean | undefined): Promise<string | undefined> {
  const share = deps.cfg.share;
  if (!share) return undefined;
  if (shareHealthy === false) return 'share-unhealthy';
  if (shareHealthy === true) return undefined;
  // No daemon to ask: /proc/self/mountinfo is kernel memory, safe to read even
  // when the share hangs, and an unmounted mount point must not get folders
  // the mount would later hide.
  const info = await readFile(deps.paths.procMounts, 'utf8').catch(() => '');
  return mountPoints(info).has(share.mountPoint) ? undefined : 'share-not-mounted';
}

async function runShareSide(deps: LoginDeps, plan: UserLinksPlan, left: (cap: number) => number): Promise<StepOutcome> {
  const quick = await shareFoldersState(deps.run, plan, left(CHILD_CAP_MS));
  if (quick === 'in-place') return { state: 'ok', changes: [], warnings: [] };
  if (quick === 'hung')
    return {
      state: 'failed',
      reason: 'share-hung',
      changes: [],
      warnings: [`${deps.cfg.workspace.root} did not answer (stat killed after its deadline): share hung?`],
    };
  const report = await withNodeSlot(deps, () =>
    ensureShareFolders(deps.run, deps.nodeBinary ?? process.execPath, plan, {
      root: deps.paths.under(deps.cfg.workspace.root),
      createRoot: deps.cfg.share === undefined,
      timeoutMs: left(CHILD_CAP_MS),
    }),
  );
  return shareStep(report);
}

async function runHomeSide(deps: LoginDeps, plan: UserLinksPlan, left: (cap: number) => number): Promise<StepOutcome> {
  const node = deps.nodeBinary ?? process.execPath;
  let report = await withNodeSlot(deps, () => ensureHomeLink(deps.run, node, plan, left(CHILD_CAP_MS)));
  if (report.state === 'home-missing' && deps.cfg.workspace.createHome && deps.paths.root === '/') {
    // The helper pam_mkhomedir itself runs: skel, umask 0077, and since
    // Linux-PAM 1.6 no-follow directory creation. Normally pam_mkhomedir ran
    // earlier in the session stack; JupyterHub opens no PAM session.
    const mk = await deps.run({ file: 'mkhomedir_helper', args: [plan.account.name, '0077'], cwd: '/', timeoutMs: left(CHILD_CAP_MS) });
    if (mk.exitCode !== 0)
      return {
        state: 'failed',
        reason: 'home-missing',
        changes: [],
        warnings: [`${plan.home} is missing and mkhomedir_helper failed (exit ${mk.exitCode ?? mk.signal})`],
      };
    report = await withNodeSlot(deps, () => ensureHomeLink(deps.run, node, plan, left(CHILD_CAP_MS)));
    report.changes.unshift(`created ${plan.home} (mkhomedir_helper)`);
  }
  return homeStep(report);
}

function summarizeOutcome(
  user: string,
  plan: UserLinksPlan,
  share: StepOutcome,
  home: StepOutcome,
): Pick<LoginOutcome, 'status' | 'reason' | 'message'> {
  const what = `${plan.account.name}: share ${share.state}${share.reason ? ` (${share.reason})` : ''}, home ${home.state}${home.reason ? ` (${home.reason})` : ''}`;
  if (share.state === 'refused' || home.state === 'refused')
    return { status: 'refused', reason: 'in-the-way', message: `${what}: ${[...share.warnings, ...home.warnings].join('; ')}` };
  if (home.state === 'failed')
    return { status: 'failed', reason: home.reason ?? 'home-failed', message: `${what}: ${home.warnings.join('; ')}` };
  if (share.state === 'failed' || share.state === 'skipped')
    return {
      status: 'partial',
      reason: share.reason ?? 'share-failed',
      message: `${what}${share.warnings.length ? `: ${share.warnings.join('; ')}` : ''}`,
    };
  void user;
  return { status: 'done', message: what };
}

/**
 * Do one login's work, all of it, within `timeLimitMs` (every child gets the
 * time that is left as its SIGKILL deadline). Safe to run concurrently and
 * repeatedly: every step re-checks what is there and changes only what is
 * missing.
 */
export async function runLogin(
  deps: LoginDeps,
  user: string,
  opts: { timeLimitMs: number; shareHealthy: boolean | undefined },
): Promise<LoginOutcome> {
  const started = Date.now();
  const deadline = started + opts.timeLimitMs;
  const left = (cap: number): number => Math.max(1, Math.min(cap, deadline - Date.now()));
  const log = deps.log.child('login');
  const finish = (o: Omit<LoginOutcome, 'user' | 'durationMs'>): LoginOutcome => {
    const out: LoginOutcome = { user, ...o, durationMs: Date.now() - started };
    const line = `${out.status}: ${out.message}`;
    if (out.status === 'refused' || out.status === 'failed') log.warn(line);
    else if (out.changed || out.status === 'partial') log.info(line);
    else log.debug(line);
    return out;
  };

  const skip = await shareSkipReason(deps, opts.shareHealthy);
  const quick = await fastPathFromLastPlan(deps, user, skip, opts.shareHealthy, left);
  if (quick)
    return finish({
      status: skip ? 'partial' : 'done',
      ...(skip ? { reason: skip } : {}),
      message: `${quick.account.name}: already in place${skip ? ` (share ${skip})` : ''}`,
      account: { name: quick.account.name, uid: quick.account.uid, home: quick.account.home },
      folder: quick.folder,
      share: skip ? { state: 'skipped', reason: skip, changes: [], warnings: [] } : { state: 'ok', changes: [], warnings: [] },
      home: { state: 'ok', changes: [], warnings: [] },
      changed: false,
    });

  const resolved = await resolveAccount(deps.run, user, deps.cfg, left(NSS_CAP_MS));
  if (!resolved.ok) return finish({ status: resolved.status, reason: resolved.reason, message: resolved.message, changed: false });
  const { account } = resolved;
  // One run per uid: a second spelling of the same account waits for the run in flight (per-uid.ts).
  const { result, shared } = await oncePerUid(deps, account.uid, () => loginAs(deps, user, account, skip, deadline));
  if (shared) log.debug(`${user}: joined the login of uid ${account.uid} already in flight`);
  return finish(result);
}

/** The work for a resolved account: plan, share side, $HOME side. */
async function loginAs(
  deps: LoginDeps,
  user: string,
  account: Account,
  skip: string | undefined,
  deadline: number,
): Promise<Omit<LoginOutcome, 'user' | 'durationMs'>> {
  const log = deps.log.child('login');
  const left = (cap: number): number => Math.max(1, Math.min(cap, deadline - Date.now()));
  const plan = planUserLinks(account, deps.cfg, deps.paths);
  if ('ok' in plan) return { status: 'failed', reason: plan.reason, message: `${account.name}: ${plan.message}`, changed: false };
  const who = { account: { name: account.name, uid: account.uid, home: account.home }, folder: plan.folder };
  // Fast path: one `stat` as root and one `readlink` as the user, in parallel; no Node child, no write.
  const homeFast = homeLinkInPlace(deps.run, plan, left(CHILD_CAP_MS));
  // The share gets at most half of what is left: when it hangs, the $HOME
  // link (which may dangle) is still made within the bound.
  const shareLeft = (cap: number): number => left(Math.min(cap, Math.max(1, Math.floor((deadline - Date.now()) / 2))));
  const share: StepOutcome = skip
    ? { state: 'skipped', reason: skip, changes: [], warnings: [] }
    : await runShareSide(deps, plan, shareLeft);
  let home: StepOutcome;
  if (share.state === 'refused') {
    // The link would lead into something another user planted: do not make it.
    home = { state: 'skipped', reason: 'share-refused', changes: [], warnings: [] };
    await homeFast;
  } else if (await homeFast) {
    home = { state: 'ok', changes: [], warnings: [] };
  } else {
    home = await runHomeSide(deps, plan, left);
  }
  const changed = share.changes.length + home.changes.length > 0;
  for (const c of [...share.changes, ...home.changes]) log.info(`${account.name}: ${c}`);
  const summary = summarizeOutcome(user, plan, share, home);
  rememberPlan(deps, user, summary.status === 'done' || summary.status === 'partial' ? plan : undefined);
  return { ...summary, ...who, share, home, changed };
}

/**
 * How long an NSS answer (uid, gid, home, allowed groups) is reused for a
 * repeated login of the same user. Logins come in bursts (an editor's remote
 * session opens several SSH sessions, a notebook server and a terminal start
 * together); sssd itself serves cached entries for 90 minutes by default
 * (entry_cache_timeout), so a minute here adds no staleness that matters,
 * and the folders and the link are still checked at every login.
 */
export const ACCOUNT_REUSE_MS = 60_000;

/** The last good plan per user name and when NSS last confirmed its account, per daemon context (bounded). */
const lastPlans = new WeakMap<object, Map<string, { plan: UserLinksPlan; resolvedAt: number }>>();
const MAX_REMEMBERED = 10_000;
/** The daemon's in-process checks, per daemon context. */
const inProcess = new WeakMap<object, InProcessChecks>();

function inProcessChecks(deps: LoginDeps): InProcessChecks {
  if (deps.inProcess) return deps.inProcess;
  let c = inProcess.get(deps);
  // The kernel's own mountinfo even under a path prefix: the planned paths are real paths.
  if (!c) inProcess.set(deps, (c = new InProcessChecks('/proc/self/mountinfo')));
  return c;
}

function rememberPlan(deps: LoginDeps, user: string, plan: UserLinksPlan | undefined): void {
  let plans = lastPlans.get(deps);
  if (!plans) lastPlans.set(deps, (plans = new Map()));
  if (plan === undefined) {
    plans.delete(user);
    return;
  }
  if (plans.size >= MAX_REMEMBERED) plans.clear();
  plans.set(user, { plan, resolvedAt: (deps.now ?? Date.now)() });
}

/**
 * A repeated login. Within ACCOUNT_REUSE_MS of the last NSS answer it starts
 * no process at all: the share folders and the $HOME link are checked in
 * the daemon (see in-process.ts for when that is safe). Otherwise, or where
 * in-process checks are not safe, the NSS lookup and the two checks run at
 * once in children (one round of process start-ups instead of two). The
 * plan is used only if NSS returns the same account and both checks pass;
 * anything else takes the full path.
 */
async function fastPathFromLastPlan(
  deps: LoginDeps,
  user: string,
  skip: string | undefined,
  shareHealthy: boolean | undefined,
  left: (cap: number) => number,
): Promise<UserLinksPlan | undefined> {
  const last = lastPlans.get(deps)?.get(user);
  if (!last) return undefined;
  const { plan } = last;
  const local = inProcessChecks(deps);
  const now = deps.now ?? Date.now;
  const fresh = now() - last.resolvedAt < ACCOUNT_REUSE_MS;
  const [resolved, shareOk, homeOk] = await Promise.all([
    fresh ? undefined : resolveAccount(deps.run, user, deps.cfg, left(NSS_CAP_MS)),
    skip
      ? true
      : local
          .shareFolders(plan, shareHealthy === true)
          .then(
            async (here) =>
              here ?? (await shareFoldersState(deps.run, plan, Math.max(1, Math.floor(left(CHILD_CAP_MS) / 2)))) === 'in-place',
          ),
    local.homeLink(plan).then(async (here) => here ?? (await homeLinkInPlace(deps.run, plan, left(CHILD_CAP_MS)))),
  ]);
  const same =
    resolved === undefined ||
    (resolved.ok &&
      resolved.account.name === plan.account.name &&
      resolved.account.uid === plan.account.uid &&
      resolved.account.gid === plan.account.gid &&
      resolved.account.home === plan.account.home);
  if (!same || !shareOk || !homeOk) return undefined;
  if (resolved) last.resolvedAt = now();
  return plan;
}

/** Logins in flight per daemon context: concurrent logins of one user share one run (one consistent result). */
const inflight = new WeakMap<object, Map<string, Promise<LoginOutcome>>>();
/** Users whose share side was skipped while the share was unhealthy, per daemon context. */
const deferred = new WeakMap<object, Set<string>>();

/**
 * What the daemon runs for an IPC `login`: the whole work in the background
 * (share work only while the share is healthy), answering within
 * `deadlineMs` with the outcome, or `pending` while it carries on and logs.
 */
export async function handleLogin(
  deps: LoginDeps,
  user: string,
  opts: { deadlineMs: number; shareHealthy: boolean | undefined },
): Promise<LoginOutcome> {
  const started = Date.now();
  let running = inflight.get(deps);
  if (!running) inflight.set(deps, (running = new Map()));
  let work = running.get(user);
  if (!work) {
    const map = running;
    work = runLogin(deps, user, { timeLimitMs: BACKGROUND_LIMIT_MS, shareHealthy: opts.shareHealthy })
      .catch((err: unknown): LoginOutcome => ({
        user,
        status: 'failed',
        reason: 'internal',
        message: String(err),
        changed: false,
        durationMs: Date.now() - started,
      }))
      .then((o) => {
        let later = deferred.get(deps);
        if (!later) deferred.set(deps, (later = new Set()));
        if (o.share?.reason === 'share-unhealthy') later.add(user);
        else if (o.status === 'done') later.delete(user);
        return o;
      })
      .finally(() => map.delete(user));
    running.set(user, work);
  }
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    // The caller's wait, but never longer than this VM's own bound (a hook
    // that could not read the config yet asks with the default).
    timer = setTimeout(() => resolve('late'), Math.max(0, Math.min(opts.deadlineMs, deps.cfg.workspace.loginTimeoutMs)));
  });
  const first = await Promise.race([work, late]);
  clearTimeout(timer);
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
export async function finishDeferredLogins(deps: LoginDeps): Promise<LoginOutcome[]> {
  const users = [...(deferred.get(deps) ?? [])];
  const out: LoginOutcome[] = [];
  for (const user of users) out.push(await handleLogin(deps, user, { deadlineMs: BACKGROUND_LIMIT_MS, shareHealthy: true }));
  return out;
}
