import type { CheckId, Config } from '../../agent/config-schema.js';
import type { CheckRecord } from './check-state.js';
import type { ConfigView } from './config-watch.js';
import type { RepairRecord } from './repair.js';

/** First boot as the daemon sees it. */
export interface FirstBootView {
  state: 'running' | 'done' | 'failed' | 'waiting';
  /** The task being worked on, with its attempt number. */
  task?: string;
  attempt?: number;
  startedAt?: string;
  completedAt?: string;
  durationMs?: number;
  error?: string;
}

/** Everything health, status and metrics are computed from; held in memory, never read from disk per request. */
export interface DaemonSnapshot {
  checks: readonly CheckRecord[];
  repairs: readonly RepairRecord[];
  /** The repair action that answers each check (from the capabilities' manifests), for its last repair. */
  repairFor: ReadonlyMap<CheckId, string>;
  firstBoot: FirstBootView;
  /** When the Initializing grace started (first boot's persisted start, else daemon start). */
  graceAnchor: number;
  terminating?: { eventId: string; step: string };
  /** Checks whose failure makes the VM Unhealthy (enabled and applicable ones from health.unhealthyOn). */
  unhealthyOn: readonly CheckId[];
  /** The config file on disk against the one the daemon runs (a refused file does not change the verdict: the VM runs on the last good one). */
  config?: ConfigView;
  /** How the Azure calls go: through which proxy (host:port only) or direct (agent/azure/proxy.ts). */
  azureRoute?: string;
}

export type OverallState = 'Healthy' | 'Unhealthy' | 'Initializing';

export interface HealthVerdict {
  state: OverallState;
  reason: string;
  failing: CheckId[];
}

/**
 * The verdict. Warnings never count; a check with no result yet counts as
 * not failing (it runs within seconds of start, and a restarted daemon
 * should not flap a healthy VM). During first boot the checks do not count
 * at all: they fail by design until the join and the mount are done.
 */
export function evaluateHealth(snap: DaemonSnapshot, cfg: Pick<Config['health'], 'initializingGraceSec'>, now: number): HealthVerdict {
  const fb = snap.firstBoot;
  if (fb.state === 'failed') return { state: 'Unhealthy', reason: `first boot failed: ${fb.error ?? 'see the log'}`, failing: [] };
  if (fb.state !== 'done') {
    const elapsedSec = Math.max(0, (now - snap.graceAnchor) / 1000);
    const step = fb.task ? ` (${fb.task}${fb.attempt && fb.attempt > 1 ? `, attempt ${fb.attempt}` : ''})` : '';
    if (elapsedSec < cfg.initializingGraceSec) return { state: 'Initializing', reason: `first boot in progress${step}`, failing: [] };
    return {
      state: 'Unhealthy',
      reason: `first boot still not done after ${Math.round(elapsedSec)} s (health.initializingGraceSec ${cfg.initializingGraceSec})${step}`,
      failing: [],
    };
  }
  const failing = snap.checks.filter((c) => c.state === 'fail' && snap.unhealthyOn.includes(c.id)).map((c) => c.id);
  if (failing.length > 0) {
    const first = snap.checks.find((c) => c.id === failing[0]);
    return { state: 'Unhealthy', reason: `${failing.join(', ')} failing${first ? `: ${first.reason}` : ''}`, failing };
  }
  return { state: 'Healthy', reason: 'all checks pass', failing: [] };
}

/** A check as health and `status --json` show it. */
export interface CheckView {
  id: CheckId;
  state: CheckRecord['state'];
  since: string;
  reason: string;
  lastRunAt: string | null;
  durationMs: number | null;
  affectsHealth: boolean;
  lastRepair: { action: string; at: string; result: string | null; gaveUp: boolean } | null;
  /** Present when the latest failure is of the transient kind (a timeout, the DC unreachable): it sets off no repair. */
  transient?: true;
}

/**
 * The body of GET /health, also what `status --json` prints.
 *
 * The Application Health extension (rich states) decodes this with Go's
 * encoding/json into a struct: the top-level key ApplicationHealthState is
 * matched case-insensitively, unknown keys are ignored, and a customMetrics
 * key whose value is not a string holding a JSON object fails the whole
 * parse. So: exactly one top-level key equal to "applicationhealthstate" in
 * any case, no top-level "customMetrics", detail under other names. During
 * the Initializing grace the value is "Initializing", the one answer that
 * makes the scale set show Initializing (why: docs/operations.md, What the
 * scale set sees).
 */
export function healthBody(
  snap: DaemonSnapshot,
  cfg: Pick<Config['health'], 'initializingGraceSec'>,
  now: number,
): Record<string, unknown> {
  const verdict = evaluateHealth(snap, cfg, now);
  const repairs = new Map(snap.repairs.map((r) => [r.action, r]));
  return {
    ApplicationHealthState: verdict.state,
    state: verdict.state,
    reason: verdict.reason,
    firstBoot: snap.firstBoot,
    checks: snap.checks.map((c): CheckView => checkView(c, snap, repairs)),
    repairs: snap.repairs.map((r) => ({
      action: r.action,
      gaveUp: r.gaveUp,
      attemptsInWindow: r.attempts.length,
      lastAttemptAt: r.lastAttemptAt ?? null,
      lastResult: r.lastResult ?? null,
      lastError: r.lastError ?? null,
      succeeded: r.succeeded,
      failed: r.failed,
    })),
    ...(snap.terminating ? { terminating: snap.terminating } : {}),
    ...(snap.config ? { config: snap.config } : {}),
    ...(snap.azureRoute ? { azureRoute: snap.azureRoute } : {}),
    generatedAt: new Date(now).toISOString(),
  };
}

function checkView(c: CheckRecord, snap: DaemonSnapshot, repairs: Map<string, RepairRecord>): CheckView {
  const action = snap.repairFor.get(c.id);
  const r = action ? repairs.get(action) : undefined;
  return {
    id: c.id,
    state: c.state,
    since: c.since,
    reason: c.stuckSince ? `${c.reason} (a run has been hanging since ${c.stuckSince})` : c.reason,
    lastRunAt: c.lastRunAt ?? null,
    durationMs: c.lastDurationMs ?? null,
    affectsHealth: snap.unhealthyOn.includes(c.id),
    lastRepair: r?.lastAttemptAt ? { action: r.action, at: r.lastAttemptAt, result: r.lastResult ?? null, gaveUp: r.gaveUp } : null,
    ...(c.state === 'fail' && c.transient ? { transient: true as const } : {}),
  };
}
