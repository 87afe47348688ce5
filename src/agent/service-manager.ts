import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Logger } from './log.js';
import type { Paths } from './paths.js';
import type { Runner } from './runner.js';
import { summarize } from './runner.js';

/**
 * The one door to the service manager. On a real VM that is systemd, always.
 * Where /run/systemd/system is absent (a container or the test lab's client
 * namespace, which has no PID 1 systemd and no D-Bus) the agent still has to
 * start sssd after writing its config; the "direct" implementation does just
 * that for the few daemons the agent owns the life of, instead of pretending
 * systemd is there. The choice is made once, from the same marker file
 * sd_booted(3) uses, never per call.
 */
export interface ServiceManager {
  readonly kind: 'systemd' | 'direct';
  isActive(unit: string): Promise<boolean>;
  restart(unit: string): Promise<void>;
  start(unit: string): Promise<void>;
  stop(unit: string): Promise<void>;
  enable(unit: string): Promise<void>;
  disable(unit: string): Promise<void>;
  daemonReload(): Promise<void>;
}

export function createServiceManager(deps: { run: Runner; paths: Paths; log: Logger }): ServiceManager {
  return existsSync(deps.paths.systemdRunDir) ? systemdManager(deps) : directManager(deps);
}

function systemdManager({ run, log }: { run: Runner; log: Logger }): ServiceManager {
  const systemctl = async (...args: string[]): Promise<void> => {
    const r = await run({ file: 'systemctl', args, timeoutMs: 90_000 });
    if (r.exitCode !== 0) throw new Error(`systemctl ${args.join(' ')}: ${summarize(r)}`);
  };
  return {
    kind: 'systemd',
    isActive: async (unit) => (await run({ file: 'systemctl', args: ['is-active', '--quiet', unit], timeoutMs: 10_000 })).exitCode === 0,
    restart: (unit) => systemctl('restart', unit),
    start: (unit) => systemctl('start', unit),
    stop: (unit) => systemctl('stop', unit),
    enable: (unit) => systemctl('enable', unit),
    disable: (unit) => systemctl('disable', unit),
    daemonReload: async () => {
      log.debug('systemctl daemon-reload');
      await systemctl('daemon-reload');
    },
  };
}

/** How to run the daemons we manage without systemd: argv and pid file. */
const directUnits: Record<string, { start: string[]; pidFile: string }> = {
  'sssd.service': { start: ['/usr/sbin/sssd', '-D', '--logger=files'], pidFile: '/run/sssd.pid' },
  sssd: { start: ['/usr/sbin/sssd', '-D', '--logger=files'], pidFile: '/run/sssd.pid' },
};

function directManager({ run, paths, log }: { run: Runner; paths: Paths; log: Logger }): ServiceManager {
  const lg = log.child('services');
  const pidOf = async (unit: string): Promise<number | undefined> => {
    const def = directUnits[unit];
    if (!def) return undefined;
    try {
      const pid = Number((await readFile(paths.under(def.pidFile), 'utf8')).trim());
      if (!Number.isInteger(pid) || pid <= 1) return undefined;
      process.kill(pid, 0);
      return pid;
    } catch {
      return undefined;
    }
  };
  const start = async (unit: string): Promise<void> => {
    const def = directUnits[unit];
    if (!def) {
      lg.info(`no service manager here: not starting ${unit}`);
      return;
    }
    if (await pidOf(unit)) return;
    const [file, ...args] = def.start as [string, ...string[]];
    const r = await run({ file, args, timeoutMs: 30_000 });
    if (r.exitCode !== 0) throw new Error(`starting ${unit}: ${summarize(r)}`);
  };
  const stop = async (unit: string): Promise<void> => {
    const pid = await pidOf(unit);
    if (!pid) return;
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 50 && (await pidOf(unit)); i++) await new Promise((r) => setTimeout(r, 100));
  };
  return {
    kind: 'direct',
    isActive: async (unit) => (await pidOf(unit)) !== undefined,
    start,
    stop,
    restart: async (unit) => {
      await stop(unit);
      await start(unit);
    },
    enable: async (unit) => lg.debug(`no service manager here: enable ${unit} is a no-op`),
    disable: async (unit) => lg.debug(`no service manager here: disable ${unit} is a no-op`),
    daemonReload: async () => undefined,
  };
}
