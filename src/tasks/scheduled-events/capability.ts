import type { Capability } from '../../agent/capability.js';
import { ScheduledEventsWatcher } from './index.js';

/**
 * Scale-in, delete and Spot eviction: the daemon polls Scheduled Events and,
 * for a Terminate or Preempt of this VM, runs every capability's part of
 * the clean-up (Capability.terminate) and approves the event. Its journal
 * lives in the state directory, which deprovision removes as a whole.
 */
export const scheduledEvents: Capability = {
  id: 'scheduled-events',
  daemon: [
    {
      id: 'scheduled-events',
      skip: (cfg) => (cfg.scheduledEvents.enabled ? undefined : 'scheduledEvents.enabled is false'),
      start(ctx, daemon) {
        const watcher = new ScheduledEventsWatcher({
          ctx,
          steps: daemon.terminateSteps,
          log: ctx.log.child('scheduled-events'),
          pollMs: ctx.cfg.scheduledEvents.pollSec * 1000,
          now: daemon.now,
          onLeaving: (event) => daemon.leaving(`${event.EventType} ${event.EventId}: this VM is leaving`),
          onStep: (eventId, step) => daemon.step(eventId, step),
          onApproved: (eventId) => daemon.approved(eventId),
        });
        watcher.start();
        return watcher;
      },
    },
  ],
};
