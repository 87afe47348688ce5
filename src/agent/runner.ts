import { getPriority, setPriority } from 'node:os';
import { execa, type Result } from 'execa';
import { settleWithin } from './deadline.js';
import type { Logger } from './log.js';
import type { Redactor } from './redact.js';

/** One command to run. argv only: there is no shell anywhere in the agent. */
export interface RunRequest {
  file: string;
  args?: readonly string[];
  /** Written to the child's stdin; the only way a secret may reach a child. */
  input?: string;
  /** Hard deadline; the child (and its process group) gets SIGKILL, since a process stuck on a dead CIFS share ignores anything else. */
  timeoutMs?: number;
  /** Extra environment; children otherwise get a minimal, fixed environment, never the agent's own. */
  env?: Record<string, string>;
  cwd?: string;
  uid?: number;
  gid?: number;
  /** Aborted: the child's process group gets SIGKILL at once, as at the deadline (a task context passes its own). */
  signal?: AbortSignal;
  /**
   * CPU priority: this many nice levels below the agent (nice(1)'s
   * increment; what the child starts inherits it). For background work
   * beside a critical path or a login (pam-auth-update while adcli joins,
   * an Azure call in a child), so it takes only the CPU they leave. Set
   * right after the start, not through nice(1): a missing program is still
   * a start error, not nice's exit 127.
   */
  nice?: number;
}

/** The outcome; a non-zero exit is data, not an exception. */
export interface RunResult {
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** Killed because the request's signal aborted (the daemon stopping, a Terminate). */
  cancelled?: boolean;
  /** Set when the program could not be started at all (ENOENT, EACCES). */
  startError: string | null;
  durationMs: number;
}

export type Runner = (req: RunRequest) => Promise<RunResult>;

const DEFAULT_TIMEOUT_MS = 120_000;
/** Extra time to wait for pipes to close after the kill before giving up on the child. */
const KILL_GRACE_MS = 2_000;

/**
 * Process groups of children still running. Children lead their own group
 * so a deadline can kill what they started too (a mount helper stuck on a
 * dead share, `sh -c` and its grandchild); the price is that execa's
 * clean-up on exit skips detached children, so the agent kills these groups
 * itself when it exits.
 */
const liveGroups = new Set<number>();
const stopSignals = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;

/** SIGKILL a whole group; one that already ended (ESRCH) is fine. */
function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

function killLiveGroups(): void {
  for (const pgid of liveGroups) {
    try {
      killGroup(pgid);
    } catch {
      // Exiting: nothing left to report to, and the other groups still need their kill.
    }
  }
}

/**
 * A stop signal while children run. When the agent handles the signal itself
 * (the daemon's orderly stop), its children die at its exit, not now. When
 * nothing else does, the process would die of the signal without an 'exit'
 * event: kill the groups, then die of the same signal, as signal-exit does
 * for execa's own clean-up.
 */
function onStopSignal(signal: NodeJS.Signals): void {
  if (process.listenerCount(signal) > 1) return;
  killLiveGroups();
  liveGroups.clear();
  unhookExit();
  process.kill(process.pid, signal);
}

function hookExit(): void {
  process.on('exit', killLiveGroups);
  for (const s of stopSignals) process.on(s, onStopSignal);
}

function unhookExit(): void {
  process.off('exit', killLiveGroups);
  for (const s of stopSignals) process.off(s, onStopSignal);
}

function trackGroup(pgid: number): () => void {
  if (liveGroups.size === 0) hookExit();
  liveGroups.add(pgid);
  return () => {
    if (liveGroups.delete(pgid) && liveGroups.size === 0) unhookExit();
  };
}

/** The environment every child gets: predictable output (C locale), no inherited secrets. */
export function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    LC_ALL: 'C',
    LANG: 'C',
    ...extra,
  };
}

/** `by` nice levels below the agent's own, at most 19. Not fatal: the child merely keeps the agent's priority (or has already ended). */
function lowerPriority(pid: number, by: number, log: Logger): void {
  try {
    setPriority(pid, Math.min(19, getPriority() + by));
  } catch (err) {
    log.debug(`could not lower the priority of ${pid}: ${(err as Error).message}`);
  }
}

/** Build the runner on execa. */
export function createRunner(deps: { log: Logger; redactor: Redactor }): Runner {
  const log = deps.log.child('run');
  return (req) => runOnce(req, log, deps.redactor);
}

function execaOptions(req: RunRequest) {
  return {
    input: req.input ?? '',
    reject: false,
    // Its own process group (and session: no controlling terminal to prompt on), so the deadline reaches grandchildren.
    detached: true,
    killSignal: 'SIGKILL',
    forceKillAfterDelay: false,
    extendEnv: false,
    env: childEnv(req.env),
    stripFinalNewline: false,
    encoding: 'utf8',
    ...(req.cwd === undefined ? {} : { cwd: req.cwd }),
    ...(req.uid === undefined ? {} : { uid: req.uid }),
    ...(req.gid === undefined ? {} : { gid: req.gid }),
    maxBuffer: 16 * 1024 * 1024,
  } as const;
}

async function runOnce(req: RunRequest, log: Logger, redactor: Redactor): Promise<RunResult> {
  const args = [...(req.args ?? [])];
  const shown = redactor.redact([req.file, ...args].join(' '));
  const timeoutMs = req.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const started = Date.now();
  if (req.signal?.aborted) {
    // Cancelled before it started: nothing is started only to be killed.
    log.debug(`not started (cancelled): ${shown}`);
    return { exitCode: null, signal: null, stdout: '', stderr: '', timedOut: false, cancelled: true, startError: null, durationMs: 0 };
  }
  log.debug(`exec ${shown}`, req.input === undefined ? {} : { stdin: `${req.input.length} bytes` });
  const child = execa(req.file, args, execaOptions(req));
  const pgid = child.pid;
  if (req.nice && pgid !== undefined) lowerPriority(pgid, req.nice, log);
  const untrack = pgid === undefined ? () => undefined : trackGroup(pgid);
  child.then(untrack, untrack);
  const kill = (): void => {
    try {
      if (pgid === undefined) throw new Error('no process id');
      killGroup(pgid);
    } catch (err) {
      // Thrown from a timer or an abort listener this would end the agent: kill at least the child itself.
      log.warn(`could not kill the process group of ${shown}: ${(err as Error).message}`);
      child.kill('SIGKILL');
    }
  };
  let timedOut = false;
  const deadline = setTimeout(() => {
    timedOut = true;
    kill();
  }, timeoutMs);
  const cancel = whenAborted(req.signal, kill);
  // A child in uninterruptible sleep (D state on a dead CIFS share) outlives
  // even SIGKILL; the backstop returns anyway so no caller ever hangs, after
  // the deadline or after a cancel.
  const outcome = await settleWithin(
    Promise.race([child, cancel.killed.then(() => settleWithin(child, KILL_GRACE_MS, () => 'late' as const))]),
    timeoutMs + KILL_GRACE_MS,
    () => 'late' as const,
  );
  clearTimeout(deadline);
  cancel.dispose();
  const durationMs = Date.now() - started;
  const cancelled = cancel.fired() && !timedOut;
  if (outcome === 'late') {
    log.warn(`${cancelled ? 'cancelled' : `timed out after ${timeoutMs} ms`} and did not exit after SIGKILL: ${shown}`);
    return {
      exitCode: null,
      signal: null,
      stdout: '',
      stderr: '',
      timedOut: !cancelled,
      ...(cancelled ? { cancelled } : {}),
      startError: null,
      durationMs,
    };
  }
  const result = { ...resultOf(outcome, timedOut, cancelled, durationMs), ...(cancelled ? { cancelled } : {}) };
  log.debug(
    `done ${req.file} exit=${result.exitCode ?? 'none'}${result.signal ? ` signal=${result.signal}` : ''}${
      result.timedOut ? ' timed-out' : ''
    }${cancelled ? ' cancelled' : ''} in ${durationMs} ms`,
  );
  return result;
}

/**
 * Calls `kill` once when `signal` aborts (at once when it already has).
 * The listener goes with `dispose`: a context's signal lives as long as the
 * daemon, and every command would otherwise leave one behind.
 */
function whenAborted(signal: AbortSignal | undefined, kill: () => void): { killed: Promise<void>; fired(): boolean; dispose(): void } {
  let fired = false;
  let onAbort = (): void => undefined;
  const killed = new Promise<void>((resolve) => {
    onAbort = () => {
      fired = true;
      kill();
      resolve();
    };
  });
  if (signal?.aborted) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });
  return { killed, fired: () => fired, dispose: () => signal?.removeEventListener('abort', onAbort) };
}

function resultOf(r: Result<ReturnType<typeof execaOptions>>, timedOut: boolean, cancelled: boolean, durationMs: number): RunResult {
  const killed = timedOut || cancelled;
  const startError = r.exitCode === undefined && r.signal === undefined && r.failed && !killed ? (r.code ?? r.shortMessage) : null;
  return {
    exitCode: r.exitCode ?? null,
    signal: r.signal ?? null,
    stdout: typeof r.stdout === 'string' ? r.stdout : '',
    stderr: typeof r.stderr === 'string' ? r.stderr : '',
    timedOut,
    startError: startError ?? null,
    durationMs,
  };
}

/** First line of stderr (or stdout), redacted by the caller's logger; for error messages. */
export function summarize(r: RunResult): string {
  if (r.startError) return `could not start: ${r.startError}`;
  if (r.cancelled) return 'cancelled';
  if (r.timedOut) return 'timed out';
  const text = (r.stderr.trim() || r.stdout.trim()).split('\n').filter(Boolean);
  return text.slice(-3).join(' / ') || `exit ${r.exitCode ?? r.signal}`;
}
