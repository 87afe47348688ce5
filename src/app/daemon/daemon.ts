import { access } from 'node:fs/promises';
import path from 'node:path';
import type { BackoffPolicy } from '../../agent/backoff.js';
import { settleWithin, waitUnlessAborted } from '../../agent/deadline.js';
import {
  checksOf,
  daemonServicesOf,
  firstBootTasksOf,
  loginsOf,
  repairsByCheck,
  terminateStepsOf,
  type Capability,
  type Logins,
  type Repair,
} from '../../agent/capability.js';
import type { HealthCheck } from '../../agent/check.js';
import type { CheckId } from '../../agent/config-schema.js';
import { withSignal } from '../../agent/context.js';
import { metricsTextfileProblem } from '../../agent/config-values.js';
import { AgentError, messageOf } from '../../agent/errors.js';
import { runFirstBoot } from '../../agent/first-boot.js';
import { writeFileAtomic } from '../../agent/fsutil.js';
import { serveIpc, type IpcRequest } from '../../agent/ipc.js';
import type { Logger } from '../../agent/log.js';
import type { StateStore } from '../../agent/state.js';
import type { Task, TaskContext } from '../../agent/task.js';
import type { CheckRecord } from './check-state.js';
import { CheckRunner } from './check-runner.js';
import type { ConfigView } from './config-watch.js';
import { evaluateHealth, healthBody, type DaemonSnapshot, type FirstBootView } from './health.js';
import { azureRouteView } from '../../agent/azure/proxy.js';
import { declareMetrics, renderMetrics, type LoginOutcome } from './agent-metrics.js';
import { Metrics } from './metrics.js';
import { Watchdog, type Notifier } from './notify.js';
import { newRepairRecord, RepairLimiter, type RepairRecord } from './repair.js';
import { confirmRepair, repairJitterMs, shouldRepair, type Confirmation } from './repair-policy.js';
import { startHealthServer } from './server.js';

export interface DaemonOptions {
  ctx: TaskContext;
  store: StateStore;
  /** What the agent does (src/app/capabilities.ts): first boot, checks, repairs, logins, the services such as the scale-in watcher. */
  capabilities: readonly Capability[];
  notifier: Notifier;
  /** Ping interval (half of WATCHDOG_USEC), undefined when systemd set no watchdog. */
  watchdogMs?: number;
  /** The logins served over the socket; default: the service of the capability that serves them (Capability.logins). */
  logins?: Logins;
  /** Serve the control socket (tests may run several daemons in one process). */
  ipc?: boolean;
  firstBootBackoff?: BackoffPolicy;
  /** How often to look again when `provision` holds the first-boot lock. */
  lockPollMs?: number;
  now?: () => number;
  /** The config file as re-read since start (config-watch.ts); shown in health, never applied. */
  configView?: () => ConfigView;
}

const REPAIR_TIMEOUT_MS = 180_000;

/**
 * `dsvm-agent run`: serves health and the control socket first, tells
 * systemd it is ready, and only then carries first boot on in the
 * background, so a slow DC never makes systemd time the unit out; progress
 * shows in STATUS= and in health ("Initializing").
 */
export class Daemon {
  readonly metrics = new Metrics();
  readonly runner: CheckRunner;
  private readonly limiter: RepairLimiter;
  private readonly firstBootTasks: readonly Task[];
  private readonly repairFor: ReadonlyMap<CheckId, Repair>;
  /** One login service for the life of the daemon: it joins concurrent logins of one user, bounds the Node children. */
  private readonly logins: Logins | undefined;
  private readonly repairs = new Map<string, RepairRecord>();
  private readonly repairing = new Set<string>();
  private readonly recheckNoRepair = new Set<CheckId>();
  private firstBoot: FirstBootView = { state: 'waiting' };
  private terminating: DaemonSnapshot['terminating'];
  private readonly startedAt: number;
  private readonly now: () => number;
  private readonly log: Logger;
  private closers: Array<() => Promise<void> | void> = [];
  private lastStatus = '';
  private stopping: Promise<void> | undefined;
  private textfileTimer: NodeJS.Timeout | undefined;
  /**
   * Aborted by the stop and by a Terminate for this VM: first boot and the
   * repairs run with it (workCtx), so neither keeps the lock, nor rejoins,
   * while the clean-up leaves the domain.
   */
  private readonly cancelWork = new AbortController();
  private readonly workCtx: TaskContext;
  /** Aborted by the stop, once the check schedules are off: the checks' commands in flight. */
  private readonly cancelChecks = new AbortController();
  healthUrl = '';
  /** Resolves when first boot has finished (done or failed); for tests and the lab. */
  firstBootSettled: Promise<void> = Promise.resolve();

  private constructor(private readonly o: DaemonOptions) {
    this.now = o.now ?? Date.now;
    this.startedAt = this.now();
    this.log = o.ctx.log.child('daemon');
    this.limiter = new RepairLimiter(o.ctx.cfg.repair.maxAttempts, o.ctx.cfg.repair.windowSec * 1000);
    this.firstBootTasks = firstBootTasksOf(o.capabilities);
    this.repairFor = repairsByCheck(o.capabilities);
    this.workCtx = withSignal(o.ctx, this.cancelWork.signal);
    this.logins = o.logins ?? loginsOf(o.capabilities, o.ctx);
    this.runner = new CheckRunner({
      ctx: withSignal(o.ctx, this.cancelChecks.signal),
      checks: checksOf(o.capabilities),
      log: o.ctx.log.child('checks'),
      now: this.now,
      onResult: (check, rec, prev) => this.onCheckResult(check, rec, prev),
    });
    declareMetrics(this.metrics);
  }

  static async start(o: DaemonOptions): Promise<Daemon> {
    const d = new Daemon(o);
    try {
      await d.serve();
    } catch (err) {
      await d.stop();
      throw err;
    }
    return d;
  }

  private async serve(): Promise<void> {
    const { ctx } = this.o;
    const http = await startHealthServer(
      ctx.cfg.health.listen,
      { allowNonLoopback: ctx.cfg.health.allowNonLoopback },
      {
        health: () => this.healthBody(),
        metrics: () => this.metricsText(),
      },
    );
    this.closers.push(() => http.close());
    this.healthUrl = http.url;
    if (this.o.ipc !== false) {
      const ipc = await serveIpc(ctx.paths.socketFile, (req) => this.onIpc(req), ctx.log.child('ipc'));
      this.closers.push(() => ipc.close());
    }
    this.log.info(`health on ${http.url}/health${this.o.ipc !== false ? `, control socket ${ctx.paths.socketFile}` : ''}`);
    // READY once we serve: first boot may take minutes and reports through STATUS= and health.
    await this.o.notifier.notify({ READY: '1', STATUS: this.statusLine() });
    this.lastStatus = this.statusLine();
    if (this.o.watchdogMs) {
      const wd = new Watchdog({
        notifier: this.o.notifier,
        intervalMs: this.o.watchdogMs,
        maxLagMs: Math.max(250, this.o.watchdogMs / 2),
        log: this.log,
      });
      wd.start();
      this.closers.push(() => wd.stop());
    }
    const statusTimer = setInterval(() => this.updateStatus(), 10_000);
    statusTimer.unref();
    this.closers.push(() => clearInterval(statusTimer));
    this.runner.start();
    this.closers.push(async () => {
      await this.runner.stop();
      this.cancelChecks.abort(new Error('the agent is stopping'));
    });
    for (const service of daemonServicesOf(this.o.capabilities)) {
      const off = service.skip?.(ctx.cfg);
      if (off !== undefined) {
        this.log.debug(`${service.id}: not started: ${off}`);
        continue;
      }
      const running = service.start(ctx, {
        terminateSteps: terminateStepsOf(this.o.capabilities),
        now: this.now,
        leaving: (why) => this.cancelWork.abort(new Error(why)),
        step: (eventId, step) => {
          this.terminating = { eventId, step };
          this.updateStatus();
        },
        approved: () => {
          this.metrics.inc('dsvm_agent_scheduled_events_approved_total');
          // Now, not after the next check: the VM may be gone before that (a Preempt gives 30 s).
          void this.writeTextfile();
        },
      });
      this.closers.push(() => running.stop());
    }
    this.firstBootSettled = this.carryFirstBoot();
  }

  /** First boot in the background, with the task engine's retries; waits for a concurrent `provision`. */
  private async carryFirstBoot(): Promise<void> {
    const { store } = this.o;
    const ctx = this.workCtx;
    const log = this.log;
    for (;;) {
      if (this.stopping || ctx.signal.aborted) return;
      if (ctx.state.firstBootCompletedAt) {
        this.firstBoot = {
          state: 'done',
          completedAt: ctx.state.firstBootCompletedAt,
          ...(ctx.state.firstBootStartedAt ? { startedAt: ctx.state.firstBootStartedAt } : {}),
          ...(ctx.state.firstBootDurationMs !== undefined ? { durationMs: ctx.state.firstBootDurationMs } : {}),
        };
        break;
      }
      try {
        log.info('first boot is not complete: running it in the background');
        this.firstBoot = { state: 'running' };
        const result = await runFirstBoot(ctx, store, this.firstBootTasks, {
          ...(this.o.firstBootBackoff ? { backoff: this.o.firstBootBackoff } : {}),
          onTask: (task, attempt) => {
            this.firstBoot = {
              state: 'running',
              task: task.id,
              attempt,
              ...(ctx.state.firstBootStartedAt ? { startedAt: ctx.state.firstBootStartedAt } : {}),
            };
            this.updateStatus();
          },
        });
        if (!result.ok) {
          this.firstBoot = {
            state: 'failed',
            error: result.failure?.describe() ?? 'unknown failure',
            ...(ctx.state.firstBootStartedAt ? { startedAt: ctx.state.firstBootStartedAt } : {}),
          };
          log.error(`first boot failed: ${this.firstBoot.error}; fix the cause and restart the agent (or run \`dsvm-agent provision\`)`);
          break;
        }
        log.info(`first boot done in ${(result.durationMs / 1000).toFixed(1)} s`);
      } catch (err) {
        if (err instanceof AgentError && err.kind === 'notReady' && err.reason === 'locked') {
          // `provision` (cloud-init) is doing it: wait for it and take its result from the state file.
          this.firstBoot = { state: 'waiting', error: err.message };
          this.updateStatus();
          await waitUnlessAborted(this.o.lockPollMs ?? 5000, ctx.signal);
          if (ctx.signal.aborted) return;
          const disk = await store.read().catch(() => undefined);
          if (disk && disk.vmId === ctx.state.vmId) Object.assign(ctx.state, disk);
          continue;
        }
        if (ctx.signal.aborted) {
          log.info(`first boot stopped: ${messageOf(err)}`);
          return;
        }
        this.firstBoot = { state: 'failed', error: messageOf(err) };
        log.error(`first boot failed: ${this.firstBoot.error}`);
        break;
      }
    }
    if (this.firstBoot.state === 'done' && this.firstBoot.durationMs !== undefined) {
      this.metrics.set('dsvm_agent_first_boot_duration_seconds', {}, this.firstBoot.durationMs / 1000);
    }
    this.updateStatus();
    // The checks ran during first boot (for status); now their failures count and may be repaired.
    if (this.firstBoot.state === 'done') for (const c of this.runner.active) void this.runner.run(c.id).catch(() => undefined);
  }

  snapshot(): DaemonSnapshot {
    const { ctx } = this.o;
    const anchor = ctx.state.firstBootStartedAt ? Date.parse(ctx.state.firstBootStartedAt) : this.startedAt;
    return {
      checks: this.runner.list(),
      repairs: [...this.repairs.values()],
      repairFor: new Map([...this.repairFor].map(([id, r]) => [id, r.action])),
      firstBoot: this.firstBoot,
      graceAnchor: Number.isFinite(anchor) ? anchor : this.startedAt,
      unhealthyOn: ctx.cfg.health.unhealthyOn.filter((id) => this.runner.active.some((c) => c.id === id)),
      ...(this.terminating ? { terminating: this.terminating } : {}),
      ...(this.o.configView ? { config: this.o.configView() } : {}),
      // The daemon's own environment is the unit's: what its Azure calls (and their children's) use.
      azureRoute: azureRouteView(ctx.cfg.azure),
    };
  }

  healthBody(): Record<string, unknown> {
    return healthBody(this.snapshot(), this.o.ctx.cfg.health, this.now());
  }

  metricsText(): string {
    return renderMetrics(this.metrics, this.snapshot(), this.o.ctx.cfg.health, this.now());
  }

  /** Called by the login path for every login it handled. */
  recordLogin(ms: number, outcome: LoginOutcome): void {
    this.metrics.inc('dsvm_agent_logins_total', { outcome });
    this.metrics.observe('dsvm_agent_login_duration_seconds', {}, ms / 1000);
  }

  private async onIpc(req: IpcRequest): Promise<unknown> {
    if (req.op === 'status') return this.healthBody();
    const logins = this.logins;
    if (!logins) throw new Error('this daemon was started without login handling: run `dsvm-agent login --user NAME` directly');
    const t0 = this.now();
    const share = this.runner.records.get('share-mounted');
    try {
      const result = await logins.handle(req.user, {
        deadlineMs: req.deadlineMs,
        shareHealthy: share ? share.state !== 'fail' : undefined,
      });
      const status = (result as { status?: unknown } | null)?.status;
      this.recordLogin(this.now() - t0, typeof status === 'string' ? status : 'unknown');
      return result;
    } catch (err) {
      this.recordLogin(this.now() - t0, 'error');
      throw err;
    }
  }

  private onCheckResult(check: HealthCheck, rec: CheckRecord, prev: CheckRecord): void {
    this.metrics.inc('dsvm_agent_check_runs_total', { check: check.id, state: rec.state });
    this.scheduleTextfile();
    if (rec.state !== prev.state) this.updateStatus();
    if (check.id === 'share-mounted' && rec.state === 'ok' && prev.state === 'fail' && this.logins) {
      this.logins.finishDeferred().catch((err: unknown) => this.log.warn(`finishing deferred logins: ${messageOf(err)}`));
    }
    const repair = this.repairFor.get(check.id);
    if (!repair) return;
    const { action } = repair;
    const record = this.repairs.get(action);
    if (rec.state === 'ok' && record) {
      if (record.gaveUp) this.log.info(`${check.id} recovered: ${action} repairs enabled again`);
      this.limiter.recovered(record);
    }
    if (this.recheckNoRepair.delete(check.id)) return;
    if (shouldRepair(rec, this.o.ctx.cfg.repair)) void this.maybeRepair(check.id, repair);
  }

  private repairsAllowed(): boolean {
    return this.o.ctx.cfg.repair.enabled && this.firstBoot.state === 'done' && !this.terminating && !this.stopping;
  }

  private async maybeRepair(id: CheckId, repair: Repair): Promise<void> {
    const { action } = repair;
    if (!this.repairsAllowed() || this.repairing.has(action)) return;
    // The jitter and the last look (repair-policy.ts); the action is held meanwhile so only one waits.
    this.repairing.add(action);
    const go = await this.confirmRepair(id, repair).finally(() => this.repairing.delete(action));
    if (!go.go) {
      this.log.info(`${id}: not starting ${action}: ${go.reason}`);
      this.metrics.inc('dsvm_agent_repairs_total', { action, result: 'skipped' });
      return;
    }
    if (!this.repairsAllowed() || this.repairing.has(action)) return;
    let rec = this.repairs.get(action);
    if (!rec) this.repairs.set(action, (rec = newRepairRecord(action)));
    const wasLatched = rec.gaveUp;
    const decision = this.limiter.decide(rec, this.now());
    if (!decision.allowed) {
      if (!wasLatched) {
        this.log.error(`${id}: ${decision.reason}`);
        this.metrics.inc('dsvm_agent_repairs_total', { action, result: 'gave-up' });
        this.updateStatus();
      }
      return;
    }
    this.repairing.add(action);
    this.limiter.started(rec, this.now());
    this.log.warn(
      `${id} failing: trying ${action} (attempt ${rec.attempts.length} of ${this.o.ctx.cfg.repair.maxAttempts} in ${this.o.ctx.cfg.repair.windowSec} s)`,
    );
    let error: string | undefined;
    try {
      await settleWithin(repair.run(this.workCtx), REPAIR_TIMEOUT_MS, () => {
        throw new Error(`${action} did not finish within ${REPAIR_TIMEOUT_MS / 1000} s`);
      });
    } catch (err) {
      error = messageOf(err);
    } finally {
      this.repairing.delete(action);
    }
    if (this.cancelWork.signal.aborted) {
      // Stopped from outside: not the repair's result, and no re-check follows (nothing may start now).
      this.log.info(`${action} stopped: ${error ?? 'finished as the agent stopped'}`);
      return;
    }
    this.limiter.finished(rec, error);
    this.metrics.inc('dsvm_agent_repairs_total', { action, result: error === undefined ? 'ok' : 'failed' });
    if (error === undefined) this.log.info(`${action} done; checking ${id} again`);
    else this.log.error(`${action} failed: ${error}`);
    // See whether it helped now, without letting this very result start the next attempt.
    this.recheckNoRepair.add(id);
    await this.runner.run(id).catch(() => undefined);
  }

  private async confirmRepair(id: CheckId, repair: Repair): Promise<Confirmation> {
    const { action } = repair;
    const wait = repairJitterMs(this.o.ctx.cfg.repair);
    if (wait > 0) {
      this.log.info(`${id} failing: ${action} in ${Math.ceil(wait / 1000)} s unless it recovers (spread across the pool)`);
      await waitUnlessAborted(wait, this.cancelWork.signal);
    }
    if (!this.repairsAllowed()) return { go: false, reason: 'repairs are not allowed now' };
    const recheck = (): Promise<CheckRecord> => {
      this.recheckNoRepair.add(id);
      return this.runner.run(id);
    };
    const trust = repair.trust;
    return confirmRepair({ recheck, ...(trust ? { trust: () => trust(this.workCtx) } : {}) }).catch((err: unknown): Confirmation => ({
      go: false,
      reason: messageOf(err),
    }));
  }

  /** STATUS= for systemctl status: the current task or state, sent only when it changes. */
  statusLine(): string {
    if (this.stopping) return 'stopping';
    if (this.terminating) return `terminating (event ${this.terminating.eventId}): ${this.terminating.step}`;
    const fb = this.firstBoot;
    if (fb.state === 'waiting' && fb.error) return `first boot: waiting for provision (${fb.error})`;
    if (fb.state === 'running')
      return `first boot: ${fb.task ?? 'starting'}${fb.attempt && fb.attempt > 1 ? ` (attempt ${fb.attempt})` : ''}`;
    const v = evaluateHealth(this.snapshot(), this.o.ctx.cfg.health, this.now());
    const gaveUp = [...this.repairs.values()].filter((r) => r.gaveUp).map((r) => r.action);
    return `${v.state}: ${v.reason}${gaveUp.length ? `; repairs stopped: ${gaveUp.join(', ')}` : ''}`.slice(0, 200);
  }

  private updateStatus(): void {
    const line = this.statusLine();
    if (line === this.lastStatus || !this.o.notifier.enabled) return;
    this.lastStatus = line;
    void this.o.notifier.notify({ STATUS: line });
  }

  /** The node-exporter textfile, rewritten atomically at most every 2 s after results change. */
  private scheduleTextfile(): void {
    if (this.textfileTimer || this.stopping) return;
    this.textfileTimer = setTimeout(() => {
      this.textfileTimer = undefined;
      void this.writeTextfile();
    }, 2000);
    this.textfileTimer.unref();
  }

  async writeTextfile(): Promise<void> {
    const { ctx } = this.o;
    const configured = ctx.cfg.health.metricsTextfile;
    const file = configured ? ctx.paths.under(configured) : ctx.paths.metricsTextfile;
    // The schema refuses a system file here; replacing one every few seconds must not depend on that alone.
    const refused = configured ? metricsTextfileProblem(configured) : undefined;
    if (refused) {
      this.log.warn(`health.metricsTextfile ${configured}: ${refused}; not written`);
      return;
    }
    try {
      // Without node-exporter's textfile directory there is no reader: do not create it.
      if (!configured) await access(path.dirname(file));
      await writeFileAtomic(file, this.metricsText(), { mode: 0o644 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || configured) this.log.debug(`metrics textfile ${file}: ${messageOf(err)}`);
    }
  }

  /** SIGTERM: STOPPING=1, then close servers, schedules and pollers; bounded so systemd never has to SIGKILL. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.cancelWork.abort(new Error('the agent is stopping'));
      await settleWithin(this.o.notifier.notify({ STOPPING: '1', STATUS: 'stopping' }), 2500, () => undefined).catch(() => undefined);
      clearTimeout(this.textfileTimer);
      for (const close of this.closers.reverse()) {
        await settleWithin(Promise.resolve(close()), 1500, () => undefined).catch(() => undefined);
      }
      this.closers = [];
    })();
    return this.stopping;
  }
}
