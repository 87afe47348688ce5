import type { HealthCheck } from './check.js';
import type { CheckId, Config } from './config-schema.js';
import { withLock } from './lock.js';
import type { Paths } from './paths.js';
import type { Task, TaskContext } from './task.js';

/**
 * The contract between a capability (`src/tasks/<capability>/`) and the app
 * (`src/app/`): everything one capability adds to the agent, declared once,
 * in its own folder. The app iterates the list of these (src/app/capabilities.ts)
 * and never looks a capability up by name. docs/architecture.md walks
 * through adding one.
 */
export interface Capability {
  /** Folder name; also the id of its first-boot task when it has one. */
  id: string;
  /** Its first-boot task, and the ids of earlier tasks it needs under a config (see Task.needs). */
  firstBoot?: { task: Task; needs(cfg: Config): readonly string[] };
  /** Its periodic checks; each carries its own default schedule and timeout. */
  checks?: readonly HealthCheck[];
  /** What the daemon may do about its failing checks. */
  repairs?: readonly Repair[];
  /** Its part of the scale-in clean-up before a Terminate or Preempt is approved. */
  terminate?: readonly TerminateStep[];
  /** Its part of `dsvm-agent deprovision` (image capture). */
  deprovision?: DeprovisionPart;
  /** The logins the daemon serves over its socket: one service the daemon makes at its start and owns for its life. */
  logins?(ctx: TaskContext): Logins;
  /** Work the daemon runs for its whole life beside the checks (the Scheduled Events watcher). */
  daemon?: readonly DaemonService[];
}

/** The login work the daemon serves over its socket. */
export interface Logins {
  handle(user: string, opts: { deadlineMs: number; shareHealthy: boolean | undefined }): Promise<unknown>;
  /** Called when the share-mounted check turns ok again: finish the logins deferred while it was down. */
  finishDeferred(): Promise<unknown>;
}

/** One piece of long-running work in the daemon, started once it serves and stopped with it. */
export interface DaemonService {
  /** Its name in logs. */
  id: string;
  /** A reason not to start it under this config (turned off), or undefined. */
  skip?(cfg: Config): string | undefined;
  start(ctx: TaskContext, daemon: DaemonHooks): { stop(): void };
}

/** What the daemon offers its services: the scale-in clean-up to run, and where to say what happens. */
export interface DaemonHooks {
  /** Every capability's part of the scale-in clean-up, in order (terminateStepsOf). */
  terminateSteps: readonly TerminateStep[];
  now(): number;
  /** This VM is leaving (a Terminate or Preempt for it): the daemon cancels first boot and repairs in flight. */
  leaving(why: string): void;
  /** A step of the clean-up runs (health detail, STATUS=). */
  step(eventId: string, label: string): void;
  /** An event was approved. */
  approved(eventId: string): void;
}

/** One repair: the checks it answers and what it does. */
export interface Repair {
  /** The name in logs, health, status and metrics (`remount-share`). */
  action: string;
  /** The checks whose failure calls for it. */
  checks: readonly CheckId[];
  run(ctx: TaskContext): Promise<void>;
  /**
   * The last look before it starts, when the failing check's own re-run is
   * not enough: a rejoin resets the machine password, so it asks the domain
   * itself (`adcli testjoin`) whether the trust is broken.
   */
  trust?(ctx: TaskContext): Promise<{ ok: boolean; reason: string }>;
}

/** One step of the scale-in clean-up; its id is what the journal records per event. */
export interface TerminateStep {
  id: string;
  /** What STATUS= and health say while it runs (`leaving the domain`). */
  label: string;
  run(ctx: TaskContext): Promise<unknown>;
}

/** What deprovision was asked for, and how the admin reads the words. */
export interface UndoOptions {
  leaveDomain: boolean;
}

export interface DescribeOptions extends UndoOptions {
  /** False when neither a config nor the last provisioned one was found: only fixed places are removed. */
  configKnown: boolean;
}

/**
 * A capability's part of deprovision: the words the admin confirms and the
 * undo that does it, side by side so the text cannot drift from the work.
 */
export interface DeprovisionPart {
  /** One line per thing it removes, as the question before `[y/N]` lists it; none when there is nothing to say. */
  describe(ctx: TaskContext, opts: DescribeOptions): string[];
  /** Remove every trace; what was removed, one entry each. Must be a no-op when there is none. */
  undo(ctx: TaskContext, opts: UndoOptions): Promise<string[]>;
}

/**
 * A repair that writes fstab, units, sssd or krb5 files like first boot does:
 * under the same lock, never during an admin's `provision` or `deprovision`.
 * Busy means skipped (not ready), and the next failing check tries again;
 * waiting would only queue a repair behind a run that may fix the same thing.
 */
export function underFirstBootLock(action: string, run: (ctx: TaskContext) => Promise<unknown>): (ctx: TaskContext) => Promise<void> {
  return (ctx) => withLock(ctx.paths.lockFile, `repair ${action}`, async () => void (await run(ctx)));
}

/** A path as the running system names it (a test root stripped), for the words an admin reads. */
export function shownPath(paths: Paths, real: string): string {
  return paths.root !== '/' && real.startsWith(`${paths.root}/`) ? real.slice(paths.root.length) : real;
}

/** The first-boot list, in the order of the capabilities, each task with what it needs. */
export function firstBootTasksOf(list: readonly Capability[]): Task[] {
  return list.flatMap((c) => (c.firstBoot ? [{ ...c.firstBoot.task, needs: c.firstBoot.needs }] : []));
}

/** Every periodic check. */
export function checksOf(list: readonly Capability[]): HealthCheck[] {
  return list.flatMap((c) => c.checks ?? []);
}

/** Which repair answers which failing check (one per check). */
export function repairsByCheck(list: readonly Capability[]): Map<CheckId, Repair> {
  const byCheck = new Map<CheckId, Repair>();
  for (const r of list.flatMap((c) => c.repairs ?? [])) for (const id of r.checks) byCheck.set(id, r);
  return byCheck;
}

/**
 * Clean-up and undo run in the reverse of first-boot order: what was set up
 * last goes first (the share before the join it may depend on; the DNS
 * record before the account whose keytab signs its removal).
 */
export function terminateStepsOf(list: readonly Capability[]): TerminateStep[] {
  return [...list].reverse().flatMap((c) => c.terminate ?? []);
}

/** Every piece of long-running work the daemon starts. */
export function daemonServicesOf(list: readonly Capability[]): DaemonService[] {
  return list.flatMap((c) => c.daemon ?? []);
}

/** The daemon's login service, from the one capability that serves logins (none: the daemon answers that it has none). */
export function loginsOf(list: readonly Capability[], ctx: TaskContext): Logins | undefined {
  const serving = list.filter((c) => c.logins);
  if (serving.length > 1) throw new Error(`internal: logins are served by ${serving.map((c) => c.id).join(' and ')}; one may`);
  return serving[0]?.logins?.(ctx);
}

/** Each capability's part of deprovision with its id, in the reverse of first-boot order (see terminateStepsOf). */
export function deprovisionPartsOf(list: readonly Capability[]): Array<{ id: string } & DeprovisionPart> {
  return [...list].reverse().flatMap((c) => (c.deprovision ? [{ id: c.id, ...c.deprovision }] : []));
}
