import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { callIpc, isDaemonAbsent } from '../../agent/ipc.js';
import { makePaths, type Paths } from '../../agent/paths.js';
import type { Config } from '../../agent/config-schema.js';
import type { LoginOutcome } from './index.js';

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

/** Identity of the config file as it is now: a changed file invalidates the cache. */
async function configKey(configFile: string): Promise<string> {
  const st = await stat(configFile);
  return `${configFile}|${st.dev}|${st.ino}|${st.size}|${st.mtimeMs}`;
}

/**
 * `workspace.loginTimeoutMs` without loading the config when possible:
 * /run/dsvm-agent/login-settings.json (root-only directory, gone at reboot)
 * holds it keyed by the config file's inode, size and mtime.
 */
export async function loginBound(paths: Paths, configFile: string): Promise<{ timeoutMs: number; cfg?: Config }> {
  const key = await configKey(configFile).catch(() => undefined);
  if (key !== undefined) {
    try {
      const cached = JSON.parse(await readFile(paths.loginSettingsFile, 'utf8')) as SettingsCache;
      if (cached.key === key && Number.isInteger(cached.loginTimeoutMs) && cached.loginTimeoutMs >= MIN_TIMEOUT_MS && cached.loginTimeoutMs <= MAX_TIMEOUT_MS) {
        return { timeoutMs: cached.loginTimeoutMs };
      }
    } catch {
      /* no cache yet, or unreadable: load the config */
    }
  }
  const { loadConfig } = await import('../../agent/config.js');
  const cfg = await loadConfig(configFile);
  if (key !== undefined) await writeSettingsCache(paths, { key, loginTimeoutMs: cfg.workspace.loginTimeoutMs }).catch(() => undefined);
  return { timeoutMs: cfg.workspace.loginTimeoutMs, cfg };
}

async function writeSettingsCache(paths: Paths, cache: SettingsCache): Promise<void> {
  if (process.getuid?.() !== 0) return;
  const dir = path.dirname(paths.loginSettingsFile);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const tmp = `${paths.loginSettingsFile}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(cache), { mode: 0o644 });
  await rename(tmp, paths.loginSettingsFile);
}

function pending(user: string, message: string, started: number): LoginOutcome {
  return { user, status: 'pending', reason: 'deadline', message, changed: false, durationMs: Date.now() - started };
}

/**
 * Ask for a login's work and return within the configured bound (plus the
 * few milliseconds it takes to notice). Throws only for a bad config.
 */
export async function requestLogin(req: LoginRequest): Promise<LoginReply> {
  const started = Date.now();
  const paths = makePaths(req.root ?? process.env.DSVM_AGENT_ROOT ?? '/');
  const configFile = req.configFile ?? paths.configFile;
  const bound = await loginBound(paths, configFile);
  const remaining = (): number => bound.timeoutMs - (Date.now() - started);
  try {
    const res = await callIpc(
      paths.socketFile,
      { op: 'login', user: req.user, deadlineMs: Math.max(0, remaining() - REPLY_MARGIN_MS), ...(req.service ? { service: req.service } : {}) },
      Math.max(1, remaining()),
    );
    if (res.ok) return { via: 'daemon', outcome: res.result as LoginOutcome };
    return { via: 'daemon', outcome: { user: req.user, status: 'failed', reason: 'daemon-error', message: `the daemon refused the request: ${res.error}`, changed: false, durationMs: Date.now() - started } };
  } catch (err) {
    if (!isDaemonAbsent(err)) {
      // Timed out (or a garbled answer): the daemon has the request and finishes it.
      return { via: 'daemon', outcome: pending(req.user, `${req.user}: the daemon is still working on it (${(err as Error).message}); it finishes in the background`, started) };
    }
  }
  return { via: 'local', outcome: await loginHere(req, paths, configFile, bound.cfg, remaining, started) };
}

/** No daemon: the work runs from this process, children bounded by what is left of the login's time. */
async function loginHere(req: LoginRequest, paths: Paths, configFile: string, loaded: Config | undefined, remaining: () => number, started: number): Promise<LoginOutcome> {
  const cfg = loaded ?? (await (await import('../../agent/config.js')).loadConfig(configFile));
  const [{ createBase }, { runLogin }] = await Promise.all([import('../../agent/context.js'), import('./index.js')]);
  const base = createBase({ ...(req.root === undefined ? {} : { root: req.root }) }, { paths });
  const limit = remaining() - 20;
  if (limit <= 0) return pending(req.user, `${req.user}: no time left within workspace.loginTimeoutMs and no daemon running: not done (start dsvm-agent)`, started);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<LoginOutcome>((resolve) => {
    timer = setTimeout(
      () => resolve(pending(req.user, `${req.user}: not finished within workspace.loginTimeoutMs and no daemon running: the next login retries`, started)),
      limit + 50,
    );
  });
  const outcome = await Promise.race([runLogin({ cfg, paths, run: base.run, log: base.log }, req.user, { timeLimitMs: limit, shareHealthy: undefined }), late]);
  clearTimeout(timer);
  return outcome;
}
