import { existsSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline/promises';
import { deprovisionPartsOf, shownPath as shown } from '../../agent/capability.js';
import { ConfigInvalid, loadConfig, validateConfig } from '../../agent/config.js';
import type { Config } from '../../agent/config-schema.js';
import { configPath, createBase, createTaskContext, type Base, type GlobalOptions } from '../../agent/context.js';
import { ExitCode, messageOf, notReady } from '../../agent/errors.js';
import { acquireLock } from '../../agent/lock.js';
import type { ServiceManager } from '../../agent/service-manager.js';
import type { TaskContext } from '../../agent/task.js';
import { capabilities } from '../capabilities.js';

/** The agent's own unit: its daemon repairs (rejoins, remounts) and writes state, which deprovision must not race. */
const AGENT_UNIT = 'dsvm-agent.service';

/** Where deprovision talks to the person running it; tests give their own. */
export interface DeprovisionIo {
  out(text: string): void;
  err(text: string): void;
  /** Whether a person can answer a question (stdin is a terminal). */
  interactive: boolean;
  ask(question: string): Promise<string>;
}

/** Doors a test replaces; every one defaults to the real thing. */
export interface DeprovisionDeps {
  base?: Partial<Base>;
  services?: ServiceManager;
  io?: DeprovisionIo;
}

export interface DeprovisionOptions {
  leaveDomain?: boolean;
  /** Act without asking: the only way to run it without a terminal (Packer, scripts). */
  yes?: boolean;
}

const BUILT_IN = 'none (no config and no state: fixed locations only)';

/**
 * The config to undo with. An image is often captured before any config
 * exists (cloud-init writes it on first boot), or after the admin removed it:
 * then the config the agent last provisioned with (kept in the state, which
 * holds references, never secret values) says what to remove; with neither,
 * only what the agent leaves at fixed places is removed.
 */
async function undoConfig(g: GlobalOptions, base: Base): Promise<{ cfg: Config; source: string }> {
  const file = configPath(g, base.paths);
  try {
    return { cfg: await loadConfig(file), source: file };
  } catch (err) {
    if (!(err instanceof ConfigInvalid)) throw err;
    try {
      const state = JSON.parse(await readFile(base.paths.stateFile, 'utf8')) as { facts?: { appliedConfig?: unknown } };
      if (state.facts?.appliedConfig)
        return { cfg: validateConfig(state.facts.appliedConfig, 'state'), source: 'the last provisioned config' };
    } catch {
      /* no usable state: fall through */
    }
    return {
      cfg: validateConfig(
        { domain: { name: 'unconfigured.invalid', joinUser: 'none', joinPassword: { file: '/nonexistent' } } },
        'built-in',
      ),
      source: BUILT_IN,
    };
  }
}

function processIo(): DeprovisionIo {
  return {
    out: (s) => void process.stdout.write(s),
    err: (s) => void process.stderr.write(s),
    interactive: process.stdin.isTTY === true,
    async ask(question) {
      // The question goes to stderr: stdout stays the report of what was done.
      const rl = createInterface({ input: process.stdin, output: process.stderr });
      try {
        return await rl.question(question);
      } finally {
        rl.close();
      }
    },
  };
}

/**
 * What is about to happen, in the words an admin checks before saying yes:
 * each capability's own description of its undo, in the order undoTasks runs them.
 */
function intentions(ctx: TaskContext, opts: DeprovisionOptions, source: string, configFile: string): { steps: string[]; kept?: string } {
  const p = ctx.paths;
  const described = { leaveDomain: opts.leaveDomain === true, configKnown: source !== BUILT_IN };
  const steps = [
    `stop ${AGENT_UNIT} (it stays enabled: each VM made from this image starts it at its first boot)`,
    ...deprovisionPartsOf(capabilities).flatMap((part) => part.describe(ctx, described)),
    `remove the agent's state in ${shown(p, p.stateDir)}`,
  ];
  return existsSync(configFile) ? { steps, kept: `It keeps ${shown(p, configFile)} and the secret files it names.` } : { steps };
}

/**
 * Like `waagent -deprovision`: on a terminal it says what it will do and asks
 * (an admin runs it by hand on a VM they may still need); without one it acts
 * only with --yes, so a script that forgot the flag stops instead of
 * wiping a machine unasked.
 */
async function confirmed(
  io: DeprovisionIo,
  opts: DeprovisionOptions,
  plan: { steps: string[]; kept?: string },
): Promise<number | undefined> {
  if (opts.yes) return undefined;
  if (!io.interactive) {
    io.err(
      'deprovision: removes the domain join, the share mount and its credentials, and the agent state of this machine; ' +
        'there is no terminal to ask on: pass --yes to confirm\n',
    );
    return ExitCode.usage;
  }
  const steps = plan.steps.map((l) => `  - ${l}\n`).join('');
  const answer = await io.ask(`dsvm-agent deprovision will, on this machine:\n${steps}${plan.kept ? `${plan.kept}\n` : ''}Proceed? [y/N] `);
  if (/^\s*y(es)?\s*$/i.test(answer)) return undefined;
  io.err('deprovision: cancelled, nothing changed\n');
  return ExitCode.failed;
}

/** Whether a daemon answers on the socket: connecting is enough, it need not reply. */
function listening(socketFile: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createConnection(socketFile);
    const done = (up: boolean): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(up);
    };
    const timer = setTimeout(() => done(true), 2000);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/**
 * Stop the daemon before touching anything: left running, its repairs would
 * rejoin, remount and write state right behind the undo. Without systemd
 * (a container, the lab) nothing can stop it for us: a daemon still
 * answering on its socket stops deprovision instead.
 */
async function stopDaemon(ctx: TaskContext, out: (s: string) => void): Promise<boolean> {
  let stopped = false;
  if (await ctx.services.isActive(AGENT_UNIT)) {
    await ctx.services.stop(AGENT_UNIT);
    out(`- daemon: stopped ${AGENT_UNIT} (still enabled: a VM made from this image starts it at its first boot)\n`);
    stopped = true;
  } else out(`= daemon: ${AGENT_UNIT} is not running\n`);
  if (await listening(ctx.paths.socketFile)) {
    throw notReady(
      `a dsvm-agent daemon is running (it answers on ${shown(ctx.paths, ctx.paths.socketFile)}) and no service manager stopped it`,
      {
        fix: 'stop it (systemctl stop dsvm-agent, or end the `dsvm-agent run` process), then run deprovision again',
        reason: 'daemon-running',
      },
    );
  }
  return stopped;
}

/** Each capability removes what it left, in the reverse of first-boot order (the share before the join it may depend on). */
async function undoTasks(ctx: TaskContext, opts: DeprovisionOptions, io: DeprovisionIo): Promise<{ removed: number; failed: boolean }> {
  let removed = 0;
  let failed = false;
  for (const part of deprovisionPartsOf(capabilities)) {
    try {
      const done = await part.undo(ctx, { leaveDomain: opts.leaveDomain === true });
      for (const r of done) io.out(`- ${part.id}: removed ${r}\n`);
      if (done.length === 0) io.out(`= ${part.id}: nothing to remove\n`);
      removed += done.length;
    } catch (err) {
      failed = true;
      io.err(`! ${part.id}: ${messageOf(err)}\n`);
    }
  }
  return { removed, failed };
}

/**
 * Remove the state directory's content but the lock we hold: removing a
 * held lock file would let a `provision` started now lock a new file while
 * this run still works. The empty lock file carries nothing of this VM.
 * Whether there was any state.
 */
async function removeStateKeepingLock(stateDir: string, lock: string): Promise<boolean> {
  const entries = await readdir(stateDir).catch(() => [] as string[]);
  const state = entries.filter((e) => path.join(stateDir, e) !== lock);
  for (const e of state) await rm(path.join(stateDir, e), { recursive: true, force: true });
  return state.length > 0;
}

/** `dsvm-agent deprovision` as the command line calls it. */
export async function deprovisionCommand(g: GlobalOptions, opts: DeprovisionOptions): Promise<number> {
  return deprovision(g, opts);
}

/**
 * Undo for image capture: stop the daemon, hold the first-boot lock (no
 * `provision` can start meanwhile), undo each first-boot task, then drop the
 * state, so a captured image carries no identity and `plan` on it shows a
 * first boot. The config stays: an image may carry it on purpose. Safe to
 * run twice; the second run says there was nothing left.
 */
export async function deprovision(g: GlobalOptions, opts: DeprovisionOptions, deps: DeprovisionDeps = {}): Promise<number> {
  const io = deps.io ?? processIo();
  const base = createBase(g, deps.base);
  const { cfg, source } = await undoConfig(g, base);
  // Deprovision runs in image-build chroots too: it never needs the VM id.
  const { ctx } = await createTaskContext(base, cfg, { offline: true, ...(deps.services ? { services: deps.services } : {}) });
  const configFile = configPath(g, base.paths);
  const refused = await confirmed(io, opts, intentions(ctx, opts, source, configFile));
  if (refused !== undefined) return refused;

  io.out(`config: ${source}\n`);
  const stopped = await stopDaemon(ctx, io.out);
  const lock = ctx.paths.lockFile;
  const release = await acquireLock(lock, 'deprovision');
  try {
    io.out(`lock: holding ${shown(ctx.paths, lock)}: no provision or first boot starts until this ends\n`);
    const { removed, failed } = await undoTasks(ctx, opts, io);
    if (failed) {
      io.err('deprovision incomplete: state kept so the remaining steps can run again\n');
      return ExitCode.failed;
    }
    const hadState = await removeStateKeepingLock(ctx.paths.stateDir, lock);
    io.out(hadState ? `- state: removed ${shown(ctx.paths, ctx.paths.stateDir)}\n` : '= state: nothing to remove\n');
    if (existsSync(configFile))
      io.out(
        `= config: kept ${shown(ctx.paths, configFile)} (an image may carry its config; delete it if it was only for trying the image)\n`,
      );
    const changed = stopped || removed > 0 || hadState;
    io.out(`deprovisioned: ${changed ? '' : 'nothing was left to remove; '}this machine can be captured\n`);
    return ExitCode.ok;
  } finally {
    await release();
  }
}
