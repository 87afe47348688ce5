import { transient } from '../../agent/errors.js';

/**
 * Pure rules about Scheduled Events documents: which events are this VM's
 * to clean up for, and how long the clean-up may take.
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

/**
 * Pure: the document IMDS sent, checked for what the watcher reads. An
 * "Events" that is not a list (a proxy's JSON, a changed format) is an
 * error naming the route, instead of a TypeError out of the filter below;
 * events without a string EventId are left out, as nothing could approve them.
 */
export function checkEventsDoc(doc: Record<string, unknown>): ScheduledEventsDoc {
  if (!Array.isArray(doc.Events))
    throw transient(`IMDS /metadata/scheduledevents answered JSON without an "Events" list`, {
      reason: 'imds-error',
      fix: "retried at the next poll; if it persists, check that nothing (a proxy) answers for 169.254.169.254 in IMDS's place",
    });
  const events = doc.Events.filter(
    (e): e is ScheduledEvent => !!e && typeof e === 'object' && typeof (e as { EventId?: unknown }).EventId === 'string',
  );
  return { DocumentIncarnation: Number(doc.DocumentIncarnation) || 0, Events: events };
}

/**
 * The event types after which this VM is gone: `Terminate` (scale-in,
 * delete; 5-15 minutes' notice) and `Preempt` (Spot eviction; 30 s). Both
 * end with the VM deleted, so both get the full clean-up. Reboot,
 * Redeploy and Freeze keep the VM and its identity: never ours to clean.
 */
export const LEAVING_EVENT_TYPES: readonly string[] = ['Terminate', 'Preempt'];

/**
 * The names this VM goes by in `Resources`: the compute name, which is
 * `<scaleset>_<instanceId>` in a uniform scale set and the plain VM name
 * otherwise. Compared case-insensitively, as Azure resource names are.
 */
export function ownResourceNames(compute: { name: string; vmScaleSetName: string }): string[] {
  return [compute.name].filter((n) => n !== '').map((n) => n.toLowerCase());
}

/**
 * Pure: the Terminate and Preempt events naming this VM. An approval
 * releases the event for every resource it lists, so events naming only
 * other VMs are never ours to approve.
 */
export function leavingEventsFor(doc: ScheduledEventsDoc, names: readonly string[]): ScheduledEvent[] {
  const own = new Set(names.map((n) => n.toLowerCase()));
  return (doc.Events ?? []).filter(
    (e) =>
      LEAVING_EVENT_TYPES.includes(e.EventType) && Array.isArray(e.Resources) && e.Resources.some((r) => own.has(String(r).toLowerCase())),
  );
}

/** Only the Terminate events naming this VM (kept for callers that ask for Terminate alone). */
export function terminateEventsFor(doc: ScheduledEventsDoc, names: readonly string[]): ScheduledEvent[] {
  return leavingEventsFor(doc, names).filter((e) => e.EventType === 'Terminate');
}

export interface BudgetOptions {
  marginMs: number;
  defaultMs: number;
  minMs: number;
}

/**
 * Time left before NotBefore, minus a margin for the approval itself; a
 * default when NotBefore is empty (already Started). A Preempt's 30 s
 * notice leaves 20 s for the steps under the default margin; the floor
 * keeps a late-seen event from getting no time at all.
 */
export function cleanupBudgetMs(
  event: ScheduledEvent,
  now: number,
  opts: BudgetOptions = { marginMs: 10_000, defaultMs: 60_000, minMs: 5_000 },
): number {
  const notBefore = event.NotBefore ? Date.parse(event.NotBefore) : NaN;
  if (!Number.isFinite(notBefore)) return opts.defaultMs;
  return Math.max(opts.minMs, notBefore - now - opts.marginMs);
}
