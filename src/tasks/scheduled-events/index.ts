import type { TerminateStep } from '../../agent/capability.js';
import { settleWithin } from '../../agent/deadline.js';
import { messageOf } from '../../agent/errors.js';
import { acquireLock, type ReleaseLock } from '../../agent/lock.js';
import type { Logger } from '../../agent/log.js';
import type { TaskContext } from '../../agent/task.js';
import type { ImdsClient } from '../../agent/azure/imds.js';
import {
  checkEventsDoc,
  cleanupBudgetMs,
  leavingEventsFor,
  ownResourceNames,
  SCHEDULED_EVENTS_PATH,
  type ScheduledEvent,
  type ScheduledEventsDoc,
} from './events.js';
import { JournalStore, type Journal } from './journal.js';

/**
 * Scale-in, delete and Spot eviction: IMDS Scheduled Events announce
 * `Terminate` 5-15 minutes ahead (the scale set's terminate notification)
 * and `Preempt` 30 s ahead. In that window this VM closes its own handles
 * on the share, unmounts, removes its DNS record and its computer account,
 * and then approves the event so the platform need not wait out the
 * timeout. No stale computer objects, no orphaned handles or records.
 * What was done is journaled per EventId (journal.ts): a restarted daemon
 * resumes, and an event is approved once.
 */

export * from './events.js';
export { JournalStore, JOURNAL_FILE, parseJournal, type Journal, type JournalEntry } from './journal.js';
export { deleteRecordScript, registeredName, removeOwnDnsRecord } from './dns-record.js';

export interface WatcherDeps {
  ctx: TaskContext;
  /**
   * The clean-up, in order: each capability's part (Capability.terminate),
   * in the reverse of first-boot order (terminateStepsOf).
   */
  steps: readonly TerminateStep[];
  log: Logger;
  pollMs: number;
  now?: () => number;
  /** Default: scheduled-events.json in the state directory. */
  journal?: JournalStore;
  /**
   * Told once an event for this VM is seen, before the clean-up waits for
   * the lock: what else runs (first boot, a repair) is to stop now.
   */
  onLeaving?(event: ScheduledEvent): void;
  /** Told about each step (health detail, STATUS=). */
  onStep?(eventId: string, step: string): void;
  /** Told when an event has been approved. */
  onApproved?(eventId: string, cleanupOk: boolean): void;
}

/** The Scheduled Events document, checked (checkEventsDoc): every bad answer is a transient error naming the route. */
export async function fetchScheduledEvents(imds: Pick<ImdsClient, 'getJson'>): Promise<ScheduledEventsDoc> {
  return checkEventsDoc(await imds.getJson<Record<string, unknown>>(SCHEDULED_EVENTS_PATH));
}

/** Polls Scheduled Events and handles each Terminate or Preempt for this VM once per EventId. */
export class ScheduledEventsWatcher {
  private timer: NodeJS.Timeout | undefined;
  private names: string[] | undefined;
  private readonly inFlight = new Map<string, Promise<void>>();
  private polling = false;
  private lastError = '';
  private readonly now: () => number;
  private readonly journal: JournalStore;

  constructor(private readonly d: WatcherDeps) {
    this.now = d.now ?? Date.now;
    this.journal = d.journal ?? new JournalStore(d.ctx.paths.stateDir);
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

  /** One poll; resolves when any event it found for this VM has been handled. */
  async pollOnce(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      this.names ??= ownResourceNames(await this.d.ctx.imds.compute());
      const doc = await fetchScheduledEvents(this.d.ctx.imds);
      this.lastError = '';
      const mine = leavingEventsFor(doc, this.names);
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
    let p = this.inFlight.get(event.EventId);
    if (!p) {
      // A failed approval is retried at the next poll: the journal keeps the steps already done.
      p = this.handle(event).catch((err: unknown) => {
        this.inFlight.delete(event.EventId);
        throw err;
      });
      this.inFlight.set(event.EventId, p);
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
      this.d.log.error(`${event.EventType} ${event.EventId}: cleaning up without the lock: ${messageOf(err)}`);
      return noRelease;
    }
  }

  private async handle(event: ScheduledEvent): Promise<void> {
    const log = this.d.log;
    const id = event.EventId;
    this.d.onLeaving?.(event);
    const before = (await this.journal.read()).events[id];
    // Approved before (an earlier daemon): IMDS lists it as Started until the VM is gone. Said once
    // all the same, so this daemon too knows it is leaving: a repair now would rejoin the domain
    // and leave the very computer account the clean-up removed.
    if (before?.approvedAt) {
      this.d.onStep?.(id, `approved at ${before.approvedAt}; waiting for the platform to delete the VM`);
      return;
    }
    const deadline = this.now() + cleanupBudgetMs(event, this.now());
    const resumed = before ? ` (resuming: ${Object.keys(before.steps).join(', ') || 'no step'} seen before a restart)` : '';
    log.info(`${event.EventType} ${id} for this VM (NotBefore ${event.NotBefore || 'now'}): cleaning up before approving${resumed}`);
    let journal = await this.journal.update((j) => {
      j.events[id] ??= { eventType: event.EventType, firstSeenAt: new Date(this.now()).toISOString(), steps: {} };
    });
    const release = await this.lockFor(event, deadline);
    try {
      for (const step of this.d.steps) journal = await this.runStep(event, step, deadline, journal);
    } finally {
      await release();
    }
    const cleanupOk = Object.values(journal.events[id]?.steps ?? {}).every((s) => s === 'done');
    this.d.onStep?.(id, 'approving');
    // Approve even after a failed step: the platform deletes the VM at NotBefore anyway, and waiting only delays the scale-in.
    await this.d.ctx.imds.request('POST', SCHEDULED_EVENTS_PATH, { StartRequests: [{ EventId: id }] });
    await this.journal.update((j) => {
      const e = j.events[id];
      if (e) Object.assign(e, { approvedAt: new Date(this.now()).toISOString(), cleanupOk });
    });
    log.info(`approved ${event.EventType} ${id}${cleanupOk ? '' : ' (cleanup incomplete, see above)'}`);
    this.d.onApproved?.(id, cleanupOk);
  }

  /** One step, unless the journal says it was done; its outcome is journaled before the next starts. */
  private async runStep(event: ScheduledEvent, step: TerminateStep, deadline: number, journal: Journal): Promise<Journal> {
    const id = event.EventId;
    if (journal.events[id]?.steps[step.id] === 'done') return journal;
    this.d.onStep?.(id, step.label);
    // Each step runs even if the one before failed: a stuck unmount must not leave a stale computer account.
    const r = await within(step.run(this.d.ctx), deadline - this.now());
    if (r !== 'ok')
      this.d.log.error(`${event.EventType} ${id}: ${step.label} ${r === 'timeout' ? 'did not finish before NotBefore' : `failed: ${r}`}`);
    return this.journal.update((j) => {
      const e = j.events[id];
      if (e) e.steps[step.id] = r === 'ok' ? 'done' : 'failed';
    });
  }
}

/** Time the clean-up waits for the lock: a share of its budget, so the steps keep most of it. */
const LOCK_SHARE_OF_BUDGET = 0.25;

async function noRelease(): Promise<void> {}

function within(p: Promise<unknown>, ms: number): Promise<'ok' | 'timeout' | string> {
  const settled = p.then(
    () => 'ok' as const,
    (err: unknown) => messageOf(err),
  );
  return settleWithin(settled, ms, () => 'timeout' as const);
}
