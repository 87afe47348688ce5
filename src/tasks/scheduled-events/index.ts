import { messageOf } from '../../agent/errors.js';
import { acquireLock, type ReleaseLock } from '../../agent/lock.js';
import type { Logger } from '../../agent/log.js';
import type { TaskContext } from '../../agent/task.js';

/**
 * Scale-in and delete: IMDS Scheduled Events announce `Terminate` 5-15
 * minutes ahead (the scale set's terminate notification). In that window
 * this VM closes its own handles on the share, unmounts, deletes its
 * computer account, and then approves the event so the platform need not
 * wait out the timeout. No stale computer objects, no orphaned handles.
 */

export const SCHEDULED_EVENTS_PATH = '/metadata/scheduledevents?api-version=2020-07-01';

export interface ScheduledEvent {
  EventId: string;
  EventType: string;
  ResourceType?: string;
  Resources: string[];
  EventStatus: string;
  NotBefore?: string;
  EventSource?: string;
  DurationInSeconds?: number;
}

export interface ScheduledEventsDoc {
  DocumentIncarnation: number;
  Events: ScheduledEvent[];
}

/** What the cleanup needs; the share and join modules provide it. */
export interface TerminateOps {
  closeHandlesAndUnmount(ctx: TaskContext): Promise<void>;
  leaveDomain(ctx: TaskContext): Promise<void>;
}

/**
 * The names this VM goes by in `Resources`: `<scaleset>_<instanceId>`,
 * which is the compute name in a uniform scale set, and the plain VM name
 * (flexible orchestration, single VMs). Compared case-insensitively, as
 * Azure resource names are.
 */
export function ownResourceNames(compute: { name: string; vmScaleSetName: string }): string[] {
  return [compute.name].filter((n) => n !== '').map((n) => n.toLowerCase());
}

/**
 * Pure: the Terminate events naming this VM. An approval releases the event
 * for every resource it lists, so events naming only other VMs are never
 * ours to approve.
 */
export function terminateEventsFor(doc: ScheduledEventsDoc, names: readonly string[]): ScheduledEvent[] {
  const own = new Set(names.map((n) => n.toLowerCase()));
  return (doc.Events ?? []).filter(
    (e) => e.EventType === 'Terminate' && Array.isArray(e.Resources) && e.Resources.some((r) => own.has(String(r).toLowerCase())),
  );
}

/** Time left before NotBefore, minus a margin for the approval itself; a default when NotBefore is empty (already Started). */
export function cleanupBudgetMs(event: ScheduledEvent, now: number, opts = { marginMs: 10_000, defaultMs: 60_000, minMs: 5_000 }): number {
  const notBefore = event.NotBefore ? Date.parse(event.NotBefore) : NaN;
  if (!Number.isFinite(notBefore)) return opts.defaultMs;
  return Math.max(opts.minMs, notBefore - now - opts.marginMs);
}

export interface WatcherDeps {
  ctx: TaskContext;
  ops: TerminateOps;
  log: Logger;
  pollMs: number;
  now?: () => number;
  /** Told about each step (health detail, STATUS=). */
  onStep?(eventId: string, step: string): void;
  /** Told when an event has been approved. */
  onApproved?(eventId: string, cleanupOk: boolean): void;
}

/** Polls Scheduled Events and handles each Terminate for this VM once per EventId. */
export class ScheduledEventsWatcher {
  private timer: NodeJS.Timeout | undefined;
  private names: string[] | undefined;
  private readonly handled = new Map<string, Promise<void>>();
  private polling = false;
  private lastError = '';
  private readonly now: () => number;

  constructor(private readonly d: WatcherDeps) {
    this.now = d.now ?? Date.now;
  }

  start(): void {
    const tick = (): void => {
      void this.pollOnce().finally(() => {
        if (this.timer !== undefined) this.timer = setTimeout(tick, this.d.pollMs);
      });
    };
    this.timer = setTimeout(tick, 0);
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** One poll; resolves when any Terminate it found has been handled. */
  async pollOnce(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      this.names ??= ownResourceNames(await this.d.ctx.imds.compute());
      const doc = await this.d.ctx.imds.getJson<ScheduledEventsDoc>(SCHEDULED_EVENTS_PATH);
      this.lastError = '';
      const mine = terminateEventsFor(doc, this.names);
      await Promise.all(mine.map((e) => this.handleOnce(e)));
    } catch (err) {
      // IMDS hiccups are routine; say it once per distinct error, not every poll.
      const msg = messageOf(err);
      if (msg !== this.lastError) this.d.log.warn(`scheduled events: ${msg}`);
      this.lastError = msg;
    } finally {
      this.polling = false;
    }
  }

  private handleOnce(event: ScheduledEvent): Promise<void> {
    let p = this.handled.get(event.EventId);
    if (!p) {
      // A failed approval is retried at the next poll: the cleanup steps are idempotent.
      p = this.handle(event).catch((err: unknown) => {
        this.handled.delete(event.EventId);
        throw err;
      });
      this.handled.set(event.EventId, p);
    }
    return p;
  }

  /**
   * The clean-up unmounts and leaves the domain: it holds the lock every
   * writer of system configuration holds, so it never runs into a
   * `provision` or a repair halfway. Busy beyond a quarter of the budget,
   * it goes on without: the platform deletes the VM at NotBefore anyway, and
   * a computer account left behind is the harm this clean-up exists to avoid.
   */
  private async lockFor(event: ScheduledEvent, deadline: number): Promise<ReleaseLock> {
    const waitMs = Math.max(0, (deadline - this.now()) * LOCK_SHARE_OF_BUDGET);
    try {
      return await acquireLock(this.d.ctx.paths.lockFile, `scale-in clean-up (${event.EventId})`, { waitMs });
    } catch (err) {
      this.d.log.error(`Terminate ${event.EventId}: cleaning up without the lock: ${messageOf(err)}`);
      return noRelease;
    }
  }

  private async handle(event: ScheduledEvent): Promise<void> {
    const log = this.d.log;
    const deadline = this.now() + cleanupBudgetMs(event, this.now());
    log.info(`Terminate ${event.EventId} for this VM (NotBefore ${event.NotBefore || 'now'}): cleaning up before approving`);
    let cleanupOk = true;
    const release = await this.lockFor(event, deadline);
    const steps: Array<[string, (ctx: TaskContext) => Promise<void>]> = [
      ['closing share handles and unmounting', (c) => this.d.ops.closeHandlesAndUnmount(c)],
      ['leaving the domain', (c) => this.d.ops.leaveDomain(c)],
    ];
    for (const [step, fn] of steps) {
      this.d.onStep?.(event.EventId, step);
      const left = deadline - this.now();
      // Each step runs even if the one before failed: a stuck unmount must not leave a stale computer account.
      const r = await within(fn(this.d.ctx), left);
      if (r !== 'ok') {
        cleanupOk = false;
        log.error(`Terminate ${event.EventId}: ${step} ${r === 'timeout' ? 'did not finish before NotBefore' : `failed: ${r}`}`);
      }
    }
    await release();
    this.d.onStep?.(event.EventId, 'approving');
    // Approve even after a failed step: the platform deletes the VM at NotBefore anyway, and waiting only delays the scale-in.
    await this.d.ctx.imds.request('POST', SCHEDULED_EVENTS_PATH, { StartRequests: [{ EventId: event.EventId }] });
    log.info(`approved Terminate ${event.EventId}${cleanupOk ? '' : ' (cleanup incomplete, see above)'}`);
    this.d.onApproved?.(event.EventId, cleanupOk);
  }
}

/** Time the clean-up waits for the lock: a share of its budget, so the steps keep most of it. */
const LOCK_SHARE_OF_BUDGET = 0.25;

async function noRelease(): Promise<void> {}

async function within(p: Promise<void>, ms: number): Promise<'ok' | 'timeout' | string> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p.then(
        () => 'ok' as const,
        (err: unknown) => messageOf(err),
      ),
      new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), Math.max(0, ms));
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
