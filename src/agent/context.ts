import { loadConfig } from './config.js';
import type { Config, SecretRef } from './config-schema.js';
import { ImdsClient } from './azure/imds.js';
import type { AzureChild } from './azure/child.js';
import { cancelled } from './errors.js';
import { createLogger, type Logger, type LogLevel } from './log.js';
import { makePaths, type Paths } from './paths.js';
import { Redactor } from './redact.js';
import { createRunner, type Runner } from './runner.js';
import { readSecret, SecretCache } from './secrets.js';
import { createServiceManager, type ServiceManager } from './service-manager.js';
import { StateStore } from './state.js';
import type { TaskContext } from './task.js';
import { resolveVmIds } from './vm-id.js';

/** Process-wide options from the command line and environment. */
export interface GlobalOptions {
  configFile?: string;
  /** Root prefix for every system path (tests, image builds in a chroot-like tree). */
  root?: string;
  logLevel?: LogLevel;
}

/** The pieces every command needs, before the config is known. */
export interface Base {
  paths: Paths;
  redactor: Redactor;
  log: Logger;
  run: Runner;
}

export function createBase(opts: GlobalOptions, overrides: Partial<Base> = {}): Base {
  // The root prefix comes only from `--root`, never from the environment: an
  // inherited variable that moves every path is invisible in `ps` and reaches
  // root processes whose environment others fill (pam_exec, docs/security.md).
  const paths = overrides.paths ?? makePaths(opts.root ?? '/');
  const redactor = overrides.redactor ?? new Redactor();
  const envLevel = process.env.DSVM_AGENT_LOG_LEVEL as LogLevel | undefined;
  const log = overrides.log ?? createLogger({ level: opts.logLevel ?? envLevel ?? 'info', redactor });
  const run = overrides.run ?? createRunner({ log, redactor });
  return { paths, redactor, log, run };
}

export function configPath(opts: GlobalOptions, paths: Paths): string {
  return opts.configFile ?? paths.configFile;
}

/**
 * Build a full task context: config, state for this VM id, doors to the
 * system. Reading the state never writes it, except that a corrupt file is
 * moved aside; with `readOnly` (`plan`, `status`) not even that.
 */
export async function createTaskContext(
  base: Base,
  cfg: Config,
  extra: {
    services?: ServiceManager;
    imds?: ImdsClient;
    clock?: TaskContext['clock'];
    offline?: boolean;
    /** Never touch the state file (`plan`, `status`): a corrupt one is read as empty and left in place. */
    readOnly?: boolean;
    /** Run Azure SDK calls in child processes (the daemon). */
    azureChild?: AzureChild;
    /** Cancels the context's work (commands, sleeps); never aborted unless given. */
    signal?: AbortSignal;
  } = {},
): Promise<{ ctx: TaskContext; store: StateStore; newVm: boolean }> {
  const imds = extra.imds ?? new ImdsClient(cfg.azure.imdsEndpoint);
  const store = new StateStore(base.paths.stateFile, base.log.child('state'));
  // Offline (deprovision in an image build chroot): never ask IMDS, which is not there.
  const ids = extra.offline ? {} : await resolveVmIds({ imds, paths: base.paths, log: base.log });
  const { state, newVm } = await store.forVm(ids, { readOnly: extra.readOnly ?? false });
  const secrets = new SecretCache();
  const secret = (ref: SecretRef, keyPath: string): Promise<string> =>
    secrets.get(`ref ${JSON.stringify(ref)}`, () =>
      readSecret(ref, keyPath, { cfg, paths: base.paths, log: base.log, redactor: base.redactor, azureChild: extra.azureChild }),
    );
  const signal = extra.signal ?? new AbortController().signal;
  const ctx: TaskContext = {
    cfg,
    paths: base.paths,
    run: runWithSignal(base.run, signal),
    log: base.log,
    redactor: base.redactor,
    imds,
    services: extra.services ?? createServiceManager(base),
    state,
    secret,
    secrets,
    signal,
    clock: extra.clock ?? { now: () => Date.now(), sleep: (ms) => new Promise((r) => setTimeout(r, ms)) },
    ...(extra.azureChild ? { azureChild: extra.azureChild } : {}),
  };
  return { ctx, store, newVm };
}

/** A runner whose commands are killed when `signal` aborts, unless a request brings its own signal. */
function runWithSignal(run: Runner, signal: AbortSignal): Runner {
  return (req) => run({ ...req, signal: req.signal ?? signal });
}

/**
 * The same context, whose work also stops when `signal` aborts: its commands
 * are killed (the runner SIGKILLs their process groups) and a sleep ends at
 * once with a `cancelled` error. The daemon gives first boot and repairs
 * one that its stop and a Terminate abort, and its checks one that its stop
 * aborts; the scale-in clean-up keeps the daemon's own, since it must finish
 * once started.
 */
export function withSignal(ctx: TaskContext, signal: AbortSignal): TaskContext {
  const both = AbortSignal.any([ctx.signal, signal]);
  const stopped = new Promise<void>((resolve) => {
    if (both.aborted) resolve();
    else both.addEventListener('abort', () => resolve(), { once: true });
  });
  return {
    ...ctx,
    signal: both,
    run: runWithSignal(ctx.run, both),
    clock: {
      now: () => ctx.clock.now(),
      sleep: async (ms) => {
        if (!both.aborted) await Promise.race([ctx.clock.sleep(ms), stopped]);
        if (both.aborted) throw cancelled(both);
      },
    },
  };
}

export async function loadConfigFor(opts: GlobalOptions, base: Base): Promise<Config> {
  return loadConfig(configPath(opts, base.paths));
}
