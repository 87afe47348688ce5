import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { Logger } from '../../agent/log.js';
import { summarize, type Runner } from '../../agent/runner.js';

/**
 * The daemon's one door to the service manager's notification socket
 * (sd_notify(3)): READY=1, STATUS=..., WATCHDOG=1, STOPPING=1.
 */
export interface Notifier {
  /** False when not started by systemd with Type=notify (no NOTIFY_SOCKET). */
  readonly enabled: boolean;
  notify(fields: Record<string, string>): Promise<void>;
}

export const nullNotifier: Notifier = { enabled: false, notify: async () => undefined };

/**
 * sd_notify through the `systemd-notify` binary, run by the agent's runner
 * (why not a library: docs/operations.md, systemd). `--pid=<our pid>` makes
 * systemd attribute each message to the daemon even after the child has
 * exited; the unit's NotifyAccess=all is the fallback should that fail.
 */
export class SystemdNotifyCommand implements Notifier {
  readonly enabled = true;
  private chain: Promise<void> = Promise.resolve();
  private warned = false;

  constructor(private readonly deps: { run: Runner; log: Logger; socket: string; pid: number; binary?: string }) {}

  notify(fields: Record<string, string>): Promise<void> {
    // One at a time, in order: READY=1 must not overtake the STATUS before it.
    const next = this.chain.then(() => this.send(fields));
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async send(fields: Record<string, string>): Promise<void> {
    const args = [`--pid=${this.deps.pid}`, ...Object.entries(fields).map(([k, v]) => `${k}=${v.replace(/[\r\n]+/g, ' ')}`)];
    const r = await this.deps.run({
      file: this.deps.binary ?? 'systemd-notify',
      args,
      env: { NOTIFY_SOCKET: this.deps.socket },
      timeoutMs: 5000,
    });
    if (r.exitCode !== 0 && !this.warned) {
      this.warned = true;
      this.deps.log.warn(`systemd-notify failed (${summarize(r)}); systemd may not see readiness or watchdog pings`);
    }
  }
}

/** The notifier for this process: systemd-notify when systemd gave us a socket, else none. */
export function notifierFromEnv(env: NodeJS.ProcessEnv, deps: { run: Runner; log: Logger; pid: number }): Notifier {
  const socket = env.NOTIFY_SOCKET;
  if (!socket) return nullNotifier;
  return new SystemdNotifyCommand({ ...deps, socket });
}

/**
 * The ping interval: half of WATCHDOG_USEC, as sd_watchdog_enabled(3)
 * recommends; undefined when the watchdog is off or meant for another pid.
 */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv, pid: number): number | undefined {
  const usec = Number(env.WATCHDOG_USEC);
  if (!Number.isFinite(usec) || usec <= 0) return undefined;
  if (env.WATCHDOG_PID && Number(env.WATCHDOG_PID) !== pid) return undefined;
  return Math.max(500, Math.floor(usec / 2000));
}

/**
 * WATCHDOG=1 from a timer, but only while the event loop is healthy. A
 * wholly blocked loop fires no timer, so pings stop by themselves; a loop
 * that crawls (a runaway synchronous task letting a timer through now and
 * then) would still ping, so each ping first looks at the worst event-loop
 * delay since the last one and skips the ping when it exceeds `maxLagMs`.
 * systemd then kills and restarts a daemon that cannot answer health in time.
 */
export class Watchdog {
  private timer: NodeJS.Timeout | undefined;
  private histogram: IntervalHistogram | undefined;
  /** When the timer's next tick is due (performance.now()), to see how late it comes. */
  private due = 0;
  skipped = 0;
  sent = 0;

  constructor(private readonly deps: { notifier: Notifier; intervalMs: number; maxLagMs: number; log: Logger; lag?: () => number }) {}

  start(): void {
    if (!this.deps.lag) {
      this.histogram = monitorEventLoopDelay({ resolution: 20 });
      this.histogram.enable();
    }
    this.due = performance.now() + this.deps.intervalMs;
    this.timer = setInterval(() => void this.tick(), this.deps.intervalMs);
    this.timer.unref();
  }

  /**
   * Worst event-loop delay since the last tick, ms: the histogram's, or this
   * tick's own lateness if that is worse. The histogram learns of a stall
   * only when its own timer runs after it; when the watchdog's timer was due
   * first, this tick would otherwise read the quiet interval before the stall
   * and ping.
   */
  private lagMs(): number {
    if (this.deps.lag) return this.deps.lag();
    const now = performance.now();
    const late = this.due > 0 ? now - this.due : 0;
    // Node re-arms an interval from when its callback starts.
    this.due = now + this.deps.intervalMs;
    const h = this.histogram;
    if (!h) return Math.max(0, late);
    const worst = h.max / 1e6;
    h.reset();
    return Math.max(worst, late);
  }

  async tick(): Promise<void> {
    const lag = this.lagMs();
    if (lag > this.deps.maxLagMs) {
      this.skipped++;
      this.deps.log.warn(`event loop lagged ${lag.toFixed(0)} ms (limit ${this.deps.maxLagMs} ms): not pinging the watchdog`);
      return;
    }
    this.sent++;
    await this.deps.notifier.notify({ WATCHDOG: '1' });
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.histogram?.disable();
  }
}
