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
  /** The in-process checks (tests give one reading another mountinfo); one per LoginMemory otherwise. */
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
/** The last good plans kept, at most (then forgotten all at once). */
const MAX_REMEMBERED = 10_000;

/**
 * What one login leaves for the next ones of the same process: the Node
 * child slots, the last good plan per user name, the run in flight per uid
 * and the in-process checks. The daemon's LoginService owns one for its
 * life; a login without a daemon makes its own.
 */
export class LoginMemory {
  readonly slots = { active: 0, waiting: [] as (() => void)[] };
  /** The last good plan per user name and when NSS last confirmed its account (bounded). */
  readonly plans = new Map<string, { plan: UserLinksPlan; resolvedAt: number }>();
  /** The run in flight per uid (per-uid.ts). */
  readonly perUid = new Map<number, Promise<unknown>>();
  /** The kernel's own mountinfo even under a path prefix: the planned paths are real paths. */
  readonly inProcess: InProcessChecks;

  constructor(inProcess?: InProcessChecks) {
    this.inProcess = inProcess ?? new InProcessChecks('/proc/self/mountinfo');
  }

  remember(user: string, plan: UserLinksPlan | undefined, now: number): void {
    if (plan === undefined) {
      this.plans.delete(user);
      return;
    }
    if (this.plans.size >= MAX_REMEMBERED) this.plans.clear();
    this.plans.set(user, { plan, resolvedAt: now });
  }
}

async function withNodeSlot<T>(memory: LoginMemory, work: () => Promise<T>): Promise<T> {
  const s = memory.slots;
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

async function runShareSide(
  deps: LoginDeps,
  memory: LoginMemory,
  plan: UserLinksPlan,
  left: (cap: number) => number,
): Promise<StepOutcome> {
  const quick = await shareFoldersState(deps.run, plan, left(CHILD_CAP_MS));
  if (quick === 'in-place') return { state: 'ok', changes: [], warnings: [] };
  if (quick === 'hung')
    return {
      state: 'failed',
      reason: 'share-hung',
      changes: [],
      warnings: [`${deps.cfg.workspace.root} did not answer (stat killed after its deadline): share hung?`],
    };
  const report = await withNodeSlot(memory, () =>
    ensureShareFolders(deps.run, deps.nodeBinary ?? process.execPath, plan, {
      root: deps.paths.under(deps.cfg.workspace.root),
      createRoot: deps.cfg.share === undefined,
      timeoutMs: left(CHILD_CAP_MS),
    }),
  );
  return shareStep(report);
}

async function runHomeSide(deps: LoginDeps, memory: LoginMemory, plan: UserLinksPlan, left: (cap: number) => number): Promise<StepOutcome> {
  const node = deps.nodeBinary ?? process.execPath;
  let report = await withNodeSlot(memory, () => ensureHomeLink(deps.run, node, plan, left(CHILD_CAP_MS)));
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
    report = await withNodeSlot(memory, () => ensureHomeLink(deps.run, node, plan, left(CHILD_CAP_MS)));
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
  memory: LoginMemory,
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
  const quick = await fastPathFromLastPlan(deps, memory, user, skip, opts.shareHealthy, left);
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
  const { result, shared } = await oncePerUid(memory.perUid, account.uid, () => loginAs(deps, memory, user, account, skip, deadline));
  if (shared) log.debug(`${user}: joined the login of uid ${account.uid} already in flight`);
  return finish(result);
}

/** The work for a resolved account: plan, share side, $HOME side. */
async function loginAs(
  deps: LoginDeps,
  memory: LoginMemory,
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
    : await runShareSide(deps, memory, plan, shareLeft);
  let home: StepOutcome;
  if (share.state === 'refused') {
    // The link would lead into something another user planted: do not make it.
    home = { state: 'skipped', reason: 'share-refused', changes: [], warnings: [] };
    await homeFast;
  } else if (await homeFast) {
    home = { state: 'ok', changes: [], warnings: [] };
  } else {
    home = await runHomeSide(deps, memory, plan, left);
  }
  const changed = share.changes.length + home.changes.length > 0;
  for (const c of [...share.changes, ...home.changes]) log.info(`${account.name}: ${c}`);
  const summary = summarizeOutcome(user, plan, share, home);
  memory.remember(user, summary.status === 'done' || summary.status === 'partial' ? plan : undefined, (deps.now ?? Date.now)());
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
  memory: LoginMemory,
  user: string,
  skip: string | undefined,
  shareHealthy: boolean | undefined,
  left: (cap: number) => number,
): Promise<UserLinksPlan | undefined> {
  const last = memory.plans.get(user);
  if (!last) return undefined;
  const { plan } = last;
  const local = memory.inProcess;
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
