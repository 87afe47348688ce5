/** Retry policy for transient failures: exponential, capped, with equal jitter (see backoffDelay). */
export interface BackoffPolicy {
  /** First delay before jitter, ms. */
  initialMs: number;
  /** Growth per attempt. */
  factor: number;
  /** No single delay exceeds this, ms. */
  maxDelayMs: number;
  /** Give up after this many attempts (the first try counts). */
  maxAttempts: number;
  /** Give up once this much time has passed since the first try, ms. */
  maxElapsedMs: number;
}

/** First boot: DNS, the DC or IMDS can take minutes to appear on a fresh VM. */
export const firstBootBackoff: BackoffPolicy = {
  initialMs: 1000,
  factor: 2,
  maxDelayMs: 60_000,
  maxAttempts: 40,
  maxElapsedMs: 30 * 60_000,
};

/**
 * Leaving the domain (deprovision, scale-in Terminate): a DC busy for a few
 * seconds must not leave a stale computer object behind, but a Terminate
 * event gives minutes, not half an hour, so the whole budget is one minute.
 */
export const leaveBackoff: BackoffPolicy = {
  initialMs: 1000,
  factor: 2,
  maxDelayMs: 10_000,
  maxAttempts: 6,
  maxElapsedMs: 60_000,
};

/**
 * Delay before retry number `attempt` (1 = the first retry). Equal jitter
 * (uniform in [ceiling/2, ceiling]) keeps a whole scale set booting at once
 * from hammering the DC in lock-step, while the lower half-bound, unlike full
 * jitter's [0, ceiling], keeps a retry from coming back at once and the
 * schedule predictable enough to reason about.
 */
export function backoffDelay(policy: BackoffPolicy, attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.initialMs * policy.factor ** Math.max(0, attempt - 1));
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.round(ceiling / 2 + (ceiling / 2) * r);
}

/** Whether another attempt is allowed after `attempts` tries and `elapsedMs`. */
export function mayRetry(policy: BackoffPolicy, attempts: number, elapsedMs: number, nextDelayMs: number): boolean {
  return attempts < policy.maxAttempts && elapsedMs + nextDelayMs <= policy.maxElapsedMs;
}
