/**
 * How a failure should be treated:
 * - `transient`: may succeed later (DC not reachable yet, DNS not ready): retry with backoff.
 * - `permanent`: will not succeed without a human (bad password, no such share): stop.
 * - `config`: the configuration or the command line is wrong: exit 2.
 * - `notReady`: a prerequisite is not there yet: exit 3, the caller retries.
 */
export type FailureKind = 'transient' | 'permanent' | 'config' | 'notReady';

/** An error with a classification and, where known, the fix a person should apply. */
export class AgentError extends Error {
  readonly kind: FailureKind;
  readonly fix: string | undefined;
  /** Short machine-readable reason, e.g. "dns-srv-missing". */
  readonly reason: string | undefined;

  constructor(kind: FailureKind, message: string, opts: { fix?: string; reason?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'AgentError';
    this.kind = kind;
    this.fix = opts.fix;
    this.reason = opts.reason;
  }

  /** "message (fix: ...)" for one-line output. */
  describe(): string {
    return this.fix ? `${this.message} (fix: ${this.fix})` : this.message;
  }
}

type Opts = { fix?: string; reason?: string; cause?: unknown };
export const transient = (message: string, opts?: Opts): AgentError => new AgentError('transient', message, opts);
export const permanent = (message: string, opts?: Opts): AgentError => new AgentError('permanent', message, opts);
export const configError = (message: string, opts?: Opts): AgentError => new AgentError('config', message, opts);
export const notReady = (message: string, opts?: Opts): AgentError => new AgentError('notReady', message, opts);

/**
 * The error work ends with when its context's signal aborted (the daemon
 * stops, or a Terminate's clean-up needs the machine): not the work's own
 * failure, so it is never retried and never recorded as the task's error.
 */
export function cancelled(signal: AbortSignal): AgentError {
  const why = signal.reason instanceof Error ? signal.reason.message : typeof signal.reason === 'string' ? signal.reason : 'cancelled';
  return new AgentError('permanent', `cancelled: ${why}`, { reason: 'cancelled' });
}

/** Exit codes of the contract: 0 ok, 1 failed, 2 bad usage or config, 3 not ready (retry). */
export const ExitCode = { ok: 0, failed: 1, usage: 2, notReady: 3 } as const;

/** The exit code for an error thrown out of a command. */
export function exitCodeFor(err: unknown): number {
  if (err instanceof AgentError) {
    if (err.kind === 'config') return ExitCode.usage;
    if (err.kind === 'notReady' || err.kind === 'transient') return ExitCode.notReady;
  }
  return ExitCode.failed;
}

/** Message of any thrown value, for logs. */
export function messageOf(err: unknown): string {
  if (err instanceof AgentError) return err.describe();
  if (err instanceof Error) return err.message;
  return String(err);
}
