import type { Config } from '../../agent/config-schema.js';
import { evaluateHealth, type DaemonSnapshot } from './health.js';
import type { Metrics } from './metrics.js';

/** A login's outcome label: the workspace outcome status (done, partial, skipped, refused, failed, pending) or error. */
export type LoginOutcome = string;

/** Login latency buckets (s): a login must stay "within a blink", and workspace.loginTimeoutMs caps it. */
export const LOGIN_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

const CHECK_STATES = ['ok', 'warn', 'fail', 'pending'] as const;
const HEALTH_STATES = ['Healthy', 'Unhealthy', 'Initializing'] as const;

/** Every family the agent exports, declared up front so scrapes list them before their first sample. */
export function declareMetrics(m: Metrics): void {
  m.declare('dsvm_agent_health_state', 'Health as reported to the scale set (1 for the current state)', 'gauge');
  m.declare('dsvm_agent_check_state', 'Current state of each periodic check (1 for the current state)', 'gauge');
  m.declare('dsvm_agent_check_duration_seconds', 'Duration of the last run of each check', 'gauge');
  m.declare('dsvm_agent_check_since_timestamp_seconds', 'Unix time each check entered its current state', 'gauge');
  m.declare('dsvm_agent_check_runs_total', 'Check runs by resulting state', 'counter');
  m.declare(
    'dsvm_agent_repairs_total',
    'Self-repair attempts by action and result (ok, failed, gave-up; skipped: the last look before it found nothing to repair)',
    'counter',
  );
  m.declare('dsvm_agent_repair_gave_up', 'Whether repairs of an action stopped after too many attempts', 'gauge');
  m.declare('dsvm_agent_logins_total', 'Logins handled by the daemon by outcome', 'counter');
  m.declare('dsvm_agent_login_duration_seconds', 'Time to handle a login', 'histogram', LOGIN_BUCKETS);
  m.declare('dsvm_agent_first_boot_duration_seconds', 'How long first boot took on this VM', 'gauge');
  m.declare('dsvm_agent_first_boot_completed', 'Whether first boot has completed', 'gauge');
  m.declare('dsvm_agent_scheduled_events_approved_total', 'Terminate events approved after cleanup', 'counter');
}

/** Refresh the state-derived gauges from the snapshot and render the text format. */
export function renderMetrics(
  m: Metrics,
  snap: DaemonSnapshot,
  health: Pick<Config['health'], 'initializingGraceSec'>,
  now: number,
): string {
  const verdict = evaluateHealth(snap, health, now);
  for (const s of HEALTH_STATES) m.set('dsvm_agent_health_state', { state: s }, verdict.state === s ? 1 : 0);
  m.clear('dsvm_agent_check_state');
  m.clear('dsvm_agent_check_duration_seconds');
  m.clear('dsvm_agent_check_since_timestamp_seconds');
  for (const c of snap.checks) {
    for (const s of CHECK_STATES) m.set('dsvm_agent_check_state', { check: c.id, state: s }, c.state === s ? 1 : 0);
    if (c.lastDurationMs !== undefined) m.set('dsvm_agent_check_duration_seconds', { check: c.id }, c.lastDurationMs / 1000);
    m.set('dsvm_agent_check_since_timestamp_seconds', { check: c.id }, Math.floor(Date.parse(c.since) / 1000));
  }
  for (const r of snap.repairs) m.set('dsvm_agent_repair_gave_up', { action: r.action }, r.gaveUp ? 1 : 0);
  m.set('dsvm_agent_first_boot_completed', {}, snap.firstBoot.state === 'done' ? 1 : 0);
  return m.render();
}
