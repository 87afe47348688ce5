import { execa } from 'execa';
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
}

/** The outcome; a non-zero exit is data, not an exception. */
export interface RunResult {
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** Set when the program could not be started at all (ENOENT, EACCES). */
  startError: string | null;
  durationMs: number;
}

export type Runner = (req: RunRequest) => Promise<RunResult>;

const DEFAULT_TIMEOUT_MS = 120_000;
/** Extra time to wait for pipes to close after the kill before giving up on the child. */
const KILL_GRACE_MS = 2_000;

/** The environment every child gets: predictable output (C locale), no inherited secrets. */
export function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    LC_ALL: 'C',
    LANG: 'C',
    ...extra,
  };
}

/** Build the runner on execa. */
export function createRunner(deps: { log: Logger; redactor: Redactor }): Runner {
  const log = deps.log.child('run');
  return async (req) => {
    const args = [...(req.args ?? [])];
    const shown = deps.redactor.redact([req.file, ...args].join(' '));
    const timeoutMs = req.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const started = Date.now();
    log.debug(`exec ${shown}`, req.input === undefined ? {} : { stdin: `${req.input.length} bytes` });
    const child = execa(req.file, args, {
      input: req.input ?? '',
      reject: false,
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
      forceKillAfterDelay: false,
      extendEnv: false,
      env: childEnv(req.env),
      stripFinalNewline: false,
      encoding: 'utf8',
      ...(req.cwd === undefined ? {} : { cwd: req.cwd }),
      ...(req.uid === undefined ? {} : { uid: req.uid }),
      ...(req.gid === undefined ? {} : { gid: req.gid }),
      cleanup: true,
      maxBuffer: 16 * 1024 * 1024,
    });
    // A grandchild that inherited our pipes can keep execa waiting after the
    // kill; the backstop returns anyway so no caller ever hangs.
    let backstop: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      backstop = setTimeout(() => resolve('late'), timeoutMs + KILL_GRACE_MS);
    });
    const outcome = await Promise.race([child, late]);
    clearTimeout(backstop);
    const durationMs = Date.now() - started;
    if (outcome === 'late') {
      child.kill('SIGKILL');
      log.warn(`timed out after ${timeoutMs} ms and did not exit: ${shown}`);
      return { exitCode: null, signal: 'SIGKILL', stdout: '', stderr: '', timedOut: true, startError: null, durationMs };
    }
    const r = outcome;
    const startError = r.exitCode === undefined && r.signal === undefined && !r.timedOut && r.failed ? (r.code ?? r.shortMessage) : null;
    const result: RunResult = {
      exitCode: r.exitCode ?? null,
      signal: r.signal ?? null,
      stdout: typeof r.stdout === 'string' ? r.stdout : '',
      stderr: typeof r.stderr === 'string' ? r.stderr : '',
      timedOut: r.timedOut,
      startError: startError ?? null,
      durationMs,
    };
    log.debug(
      `done ${req.file} exit=${result.exitCode ?? 'none'}${result.signal ? ` signal=${result.signal}` : ''}${
        result.timedOut ? ' timed-out' : ''
      } in ${durationMs} ms`,
    );
    return result;
  };
}

/** First line of stderr (or stdout), redacted by the caller's logger; for error messages. */
export function summarize(r: RunResult): string {
  if (r.startError) return `could not start: ${r.startError}`;
  if (r.timedOut) return 'timed out';
  const text = (r.stderr.trim() || r.stdout.trim()).split('\n').filter(Boolean);
  return text.slice(-3).join(' / ') || `exit ${r.exitCode ?? r.signal}`;
}
