import { capabilities } from '../capabilities.js';
import { configPath, createBase, createTaskContext, loadConfigFor, type GlobalOptions } from '../../agent/context.js';
import { AzureChild } from '../../agent/azure/child.js';
import { ConfigWatch } from '../daemon/config-watch.js';
import { Daemon } from '../daemon/daemon.js';
import { notifierFromEnv, watchdogIntervalMs } from '../daemon/notify.js';
import { ExitCode } from '../../agent/errors.js';

/** systemd sends SIGKILL after TimeoutStopSec; the daemon stops well before. */
const STOP_LIMIT_MS = 4000;

/**
 * The first SIGTERM or SIGINT. The listeners stay registered for the life of
 * the process (`on`, never `once`): execa's child clean-up (signal-exit)
 * adds its own SIGTERM listener while a child runs, and when it finds itself
 * the only listener it re-raises the signal and the process dies on the spot,
 * with no STOPPING=1 and no orderly close. A `once` listener is removed
 * before the others run, so a SIGTERM arriving during a watchdog ping or a
 * check would have done exactly that.
 */
export function stopSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    process.on('SIGTERM', () => resolve('SIGTERM'));
    process.on('SIGINT', () => resolve('SIGINT'));
  });
}

/** `dsvm-agent run`: the daemon the systemd unit starts (Type=notify, WatchdogSec, NotifyAccess=all). */
export async function runCommand(g: GlobalOptions, _opts: unknown): Promise<number> {
  const base = createBase(g);
  const cfg = await loadConfigFor(g, base);
  // The Azure SDKs would stay resident for the life of the VM once loaded: the daemon calls them in a child.
  const azureChild = new AzureChild({
    command: [process.execPath, ...process.execArgv, process.argv[1]!],
    cfg,
    root: base.paths.root,
    logLevel: g.logLevel ?? process.env.DSVM_AGENT_LOG_LEVEL ?? 'info',
    run: base.run,
    log: base.log.child('azure'),
    redactor: base.redactor,
  });
  const { ctx, store } = await createTaskContext(base, cfg, { azureChild });
  const log = base.log.child('daemon');
  const configWatch = new ConfigWatch(configPath(g, base.paths), cfg, base.log.child('config'));
  configWatch.start();
  const daemon = await Daemon.start({
    ctx,
    store,
    capabilities,
    notifier: notifierFromEnv(process.env, { run: base.run, log: base.log.child('notify'), pid: process.pid }),
    watchdogMs: watchdogIntervalMs(process.env, process.pid),
    configView: () => configWatch.current,
  });
  const signal = await stopSignal();
  log.info(`${signal}: stopping`);
  const hard = setTimeout(() => {
    log.warn(`did not stop within ${STOP_LIMIT_MS} ms: exiting anyway`);
    process.exit(ExitCode.ok);
  }, STOP_LIMIT_MS);
  configWatch.stop();
  await daemon.stop();
  clearTimeout(hard);
  log.info('stopped');
  // First-boot backoff sleeps and check children may still be pending: exit
  // now; the runner's exit hook kills every running child's process group.
  process.exit(ExitCode.ok);
}
