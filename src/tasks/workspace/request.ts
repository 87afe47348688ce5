import { readFileSync, statSync } from 'node:fs';
import { settleWithin } from '../../agent/deadline.js';
import { callIpc, isDaemonAbsent } from '../../agent/ipc.js';
import { makePaths, type Paths } from '../../agent/paths.js';
import type { LoginOutcome } from './index.js';
import { checkName } from './names.js';

/**
 * The caller's side of a login (`pam-session`, `login`): ask the daemon and
 * wait at most `workspace.loginTimeoutMs`; with no daemon, do the work here
 * with every child under a SIGKILL deadline inside the same bound.
 *
 * This module runs inside every login, so it imports only Node built-ins and
 * two small agent modules. The config (YAML + schema validation, the largest
 * part of start-up) is read only when its cached bound is stale or when
 * there is no daemon to do the work.
 */

/** The time left for the answer to travel back: the daemon answers this much before the caller gives up. */
const REPLY_MARGIN_MS = 100;
/** The least time given to reach the daemon, so a hook that started late still hands the work over. */
const MIN_SEND_MS = 100;
/** Bounds the schema allows; a cache outside them is ignored. */
const MIN_TIMEOUT_MS = 100;
const MAX_TIMEOUT_MS = 60_000;

export interface LoginRequest {
  user: string;
  service?: string;
  root?: string;
  configFile?: string;
}

export interface LoginReply {
  /** Who did the work: the daemon, this process, or nobody yet. */
  via: 'daemon' | 'local';
  outcome: LoginOutcome;
}

interface SettingsCache {
  key: string;
  loginTimeoutMs: number;
}

/**
 * Identity of the config file as it is now: a changed file invalidates the cache.
 * Synchronous, like the cache read below: both files are small and local
 * (/etc, /run), and an async call would start libuv's thread pool in a
 * process that lives for a few dozen milliseconds.
 */
function configKey(configFile: string): string {
  const st = statSync(configFile);
  return `${configFile}|${st.dev}|${st.ino}|${st.size}|${st.mtimeMs}`;
}

/** The schema's default for workspace.loginTimeoutMs: the bound while the configured one is not known yet. */
export const DEFAULT_LOGIN_TIMEOUT_MS = 3000;

/**
 * `workspace.loginTimeoutMs` from /run/dsvm-agent/login-settings.json (a
 * root-only directory, gone at reboot), keyed by the config file's inode,
 * size and mtime; undefined when there is no valid entry.
 */
export async function cachedBound(paths: Paths, configFile: string): Promise<{ timeoutMs?: number; key?: string }> {
  let key: string;
  try {
    key = configKey(configFile);
  } catch {
    return {};
  }
  try {
    const cached = JSON.parse(readFileSync(paths.loginSettingsFile, 'utf8')) as SettingsCache;
    if (
      cached.key === key &&
      Number.isInteger(cached.loginTimeoutMs) &&
      cached.loginTimeoutMs >= MIN_TIMEOUT_MS &&
      cached.loginTimeoutMs <= MAX_TIMEOUT_MS
    ) {
      return { timeoutMs: cached.loginTimeoutMs, key };
    }
  } catch {
    /* no cache yet, or unreadable */
  }
  return { key };
}

/**
 * Root writes this file at login, in a process whose environment a user may
 * have filled: it goes through the one atomic writer (random temp name,
 * O_EXCL|O_NOFOLLOW), never a predictable `<pid>.tmp` that someone could
 * have planted a symlink at. Loaded only when writing (rarely), so the
 * hook's hot path does not load node:crypto.
 */
export async function writeSettingsCache(paths: Paths, cache: SettingsCache): Promise<void> {
  if (process.getuid?.() !== 0) return;
  const { writeFileAtomic } = await import('../../agent/fsutil.js');
  await writeFileAtomic(paths.loginSettingsFile, JSON.stringify(cache), { mode: 0o644 });
}

export function pending(user: string, message: string, started: number): LoginOutcome {
  return { user, status: 'pending', reason: 'deadline', message, changed: false, durationMs: Date.now() - started };
}

/**
 * Ask for a login's work and return within the bound, counted from this
 * process's start. The hot path (daemon up, bound cached) reads no config at
 * all: the daemon has its own and caps its answer time to it. The config is
 * loaded only to do the work here, when no daemon listens. Throws only for a
 * bad config in that case.
 */
export async function requestLogin(req: LoginRequest): Promise<LoginReply> {
  // The runtime's own start, as epoch milliseconds. Not performance.timeOrigin:
  // the first use of the `performance` global loads perf_hooks and its eight
  // internal modules (about 1.3 ms of the hook's start-up, bench/login.ts);
  // process.uptime() counts from the same start and is already loaded.
  const started = Date.now() - process.uptime() * 1000;
  // Never from the environment: pam_exec passes one a user may have filled (see src/entry.ts).
  const paths = makePaths(req.root ?? '/');
  const bad = checkName(req.user);
  if (bad)
    return {
      via: 'local',
      outcome: {
        user: req.user,
        status: 'failed',
        reason: bad.reason,
        message: bad.message,
        changed: false,
        durationMs: Date.now() - started,
      },
    };
  const configFile = req.configFile ?? paths.configFile;
  const cached = await cachedBound(paths, configFile);
  let bound = cached.timeoutMs ?? DEFAULT_LOGIN_TIMEOUT_MS;
  const remaining = (): number => bound - (Date.now() - started);
  try {
    const res = await callIpc(
      paths.socketFile,
      {
        op: 'login',
        user: req.user,
        deadlineMs: Math.max(0, remaining() - REPLY_MARGIN_MS),
        ...(req.service ? { service: req.service } : {}),
      },
      // Even with no time left the request goes out: the daemon then does the work in the background.
      Math.max(MIN_SEND_MS, remaining()),
    );
    if (res.ok) {
      const outcome = res.result as LoginOutcome;
      const daemonBound = outcome.boundMs;
      if (
        cached.timeoutMs === undefined &&
        cached.key !== undefined &&
        Number.isInteger(daemonBound) &&
        daemonBound! >= MIN_TIMEOUT_MS &&
        daemonBound! <= MAX_TIMEOUT_MS
      ) {
        await writeSettingsCache(paths, { key: cached.key, loginTimeoutMs: daemonBound! }).catch(() => undefined);
      }
      return { via: 'daemon', outcome };
    }
    return {
      via: 'daemon',
      outcome: {
        user: req.user,
        status: 'failed',
        reason: 'daemon-error',
        message: `the daemon refused the request: ${res.error}`,
        changed: false,
        durationMs: Date.now() - started,
      },
    };
  } catch (err) {
    if (!isDaemonAbsent(err)) {
      // Timed out (or a garbled answer): the daemon has the request and finishes it.
      return {
        via: 'daemon',
        outcome: pending(
          req.user,
          `${req.user}: the daemon is still working on it (${(err as Error).message}); it finishes in the background`,
          started,
        ),
      };
    }
  }
  // No daemon: the config, the engine and the children come from the full
  // agent, loaded only now (a separate module, so the hook's hot path
  // never parses them).
  const { loadAndCache, loginHere } = await import('./local-login.js');
  const cfg = await settleWithin(loadAndCache(paths, configFile, cached.key), remaining(), () => undefined, { unref: true });
  if (cfg === undefined)
    return {
      via: 'local',
      outcome: pending(
        req.user,
        `${req.user}: no daemon running and the config could not be read within the bound: not done (start dsvm-agent)`,
        started,
      ),
    };
  bound = cfg.workspace.loginTimeoutMs;
  return { via: 'local', outcome: await loginHere(req, paths, cfg, remaining, started) };
}
