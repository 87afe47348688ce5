import { checksOf } from '../../agent/capability.js';
import { createBase, createTaskContext, loadConfigFor, type GlobalOptions } from '../../agent/context.js';
import { CheckRunner } from '../daemon/check-runner.js';
import { healthBody, type CheckView, type DaemonSnapshot, type FirstBootView } from '../daemon/health.js';
import { ExitCode, messageOf } from '../../agent/errors.js';
import { callIpc, isDaemonAbsent } from '../../agent/ipc.js';
import type { TaskContext } from '../../agent/task.js';
import { capabilities } from '../capabilities.js';
import { azureRouteView } from '../../agent/azure/proxy.js';

const DAEMON_TIMEOUT_MS = 5000;

/**
 * `dsvm-agent status [--json]`: the daemon's view over its socket (the same
 * object GET /health returns); when no daemon answers, the checks are run
 * here, once, and the output says so. Exit code: 0 Healthy, 1 Unhealthy,
 * 3 Initializing (first boot not done yet).
 */
export async function statusCommand(g: GlobalOptions, opts: { json?: boolean }): Promise<number> {
  const base = createBase({ ...g, logLevel: g.logLevel ?? 'warn' });
  let body: Record<string, unknown> | undefined;
  let note = '';
  try {
    const res = await callIpc(base.paths.socketFile, { op: 'status' }, DAEMON_TIMEOUT_MS);
    if (res.ok && res.result && typeof res.result === 'object') body = { ...(res.result as Record<string, unknown>), source: 'daemon' };
    else note = `the daemon answered with an error (${res.ok ? 'empty answer' : res.error})`;
  } catch (err) {
    note = isDaemonAbsent(err) ? 'the daemon is not running' : `the daemon did not answer (${messageOf(err)})`;
  }
  if (!body) {
    const cfg = await loadConfigFor(g, base);
    // Looking must not change anything, not even move a corrupt state file aside.
    const { ctx } = await createTaskContext(base, cfg, { readOnly: true });
    body = { ...(await computeLocally(ctx)), source: 'local', note: `${note}: checks computed now by this command` };
  }
  process.stdout.write(base.redactor.redact(opts.json ? `${JSON.stringify(body, null, 2)}\n` : renderStatus(body)));
  const state = body.ApplicationHealthState;
  return state === 'Healthy' ? ExitCode.ok : state === 'Initializing' ? ExitCode.notReady : ExitCode.failed;
}

/** Run every check once here and build the same body the daemon serves. */
export async function computeLocally(ctx: TaskContext, now: () => number = Date.now): Promise<Record<string, unknown>> {
  const runner = new CheckRunner({ ctx, checks: checksOf(capabilities), log: ctx.log.child('checks'), now });
  await runner.runAll();
  const firstBoot: FirstBootView = ctx.state.firstBootCompletedAt
    ? {
        state: 'done',
        completedAt: ctx.state.firstBootCompletedAt,
        ...(ctx.state.firstBootDurationMs !== undefined ? { durationMs: ctx.state.firstBootDurationMs } : {}),
      }
    : { state: 'waiting', error: 'first boot has not completed (the daemon carries it on; `dsvm-agent provision` runs it now)' };
  const anchor = ctx.state.firstBootStartedAt ? Date.parse(ctx.state.firstBootStartedAt) : now();
  const snap: DaemonSnapshot = {
    checks: runner.list(),
    repairs: [],
    repairFor: new Map(),
    firstBoot,
    graceAnchor: anchor,
    unhealthyOn: ctx.cfg.health.unhealthyOn.filter((id) => runner.active.some((c) => c.id === id)),
    // This command's environment, not the unit's: the daemon's own view says what the unit uses.
    azureRoute: azureRouteView(ctx.cfg.azure),
  };
  return healthBody(snap, ctx.cfg.health, now());
}

function age(iso: string | null | undefined, now: number): string {
  if (!iso) return '-';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  const rel =
    s < 90 ? `${s}s` : s < 5400 ? `${Math.round(s / 60)}m` : s < 172800 ? `${Math.round(s / 3600)}h` : `${Math.round(s / 86400)}d`;
  return `${iso.slice(0, 19).replace('T', ' ')}Z (${rel} ago)`;
}

/** The human table: check, state, since, reason, last repair. */
export function renderStatus(body: Record<string, unknown>, now = Date.now()): string {
  const checks = (body.checks as CheckView[] | undefined) ?? [];
  const fb = body.firstBoot as FirstBootView | undefined;
  const lines: string[] = [];
  lines.push(`health: ${String(body.state ?? body.ApplicationHealthState)} - ${String(body.reason ?? '')}`);
  lines.push(body.source === 'local' ? `source: ${String(body.note ?? 'computed locally')}` : 'source: the running daemon');
  if (fb)
    lines.push(
      `first boot: ${fb.state}${fb.task ? ` (${fb.task}${fb.attempt && fb.attempt > 1 ? `, attempt ${fb.attempt}` : ''})` : ''}${fb.error ? `: ${fb.error}` : ''}`,
    );
  const cv = body.config as { file: string; state: string; since: string; reason?: string } | undefined;
  if (cv && cv.state !== 'ok') lines.push(`config: ${cv.state.toUpperCase()} ${cv.file} since ${age(cv.since, now)}: ${cv.reason ?? ''}`);
  if (typeof body.azureRoute === 'string') lines.push(`azure calls: ${body.azureRoute}`);
  const t = body.terminating as { eventId: string; step: string } | undefined;
  if (t) lines.push(`terminating: event ${t.eventId}: ${t.step}`);
  lines.push('');
  const rows = checks.map((c) => [
    c.id,
    `${c.state.toUpperCase()}${c.affectsHealth ? '' : '*'}`,
    age(c.since, now),
    c.reason,
    c.lastRepair
      ? `${c.lastRepair.action} ${c.lastRepair.result ?? 'running'} ${age(c.lastRepair.at, now)}${c.lastRepair.gaveUp ? ' GAVE UP' : ''}`
      : '-',
  ]);
  const header = ['CHECK', 'STATE', 'SINCE', 'REASON', 'LAST REPAIR'];
  const widths = header.map((h, i) => Math.min(i === 3 ? 70 : 40, Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length))));
  const fmt = (r: string[]): string =>
    r
      .map((v, i) =>
        i === r.length - 1 ? v : v.length > (widths[i] ?? 0) ? `${v.slice(0, (widths[i] ?? 1) - 1)}…` : v.padEnd(widths[i] ?? 0),
      )
      .join('  ');
  lines.push(fmt(header), ...rows.map(fmt));
  if (checks.some((c) => !c.affectsHealth)) lines.push('', '* does not affect health (not in health.unhealthyOn); warnings never do');
  const repairs = (body.repairs as Array<{ action: string; gaveUp: boolean; lastError: string | null }> | undefined) ?? [];
  for (const r of repairs.filter((x) => x.gaveUp)) lines.push(`repairs stopped for ${r.action}${r.lastError ? `: ${r.lastError}` : ''}`);
  return lines.join('\n') + '\n';
}
