/**
 * Benchmark: JupyterHub spawn-to-ready with the shipped pre_spawn_hook
 * against the same spawn without it, in one hub process, as a ratio (target
 * at most 1.1).
 *
 * On the host (root, lab up):   npx tsx bench/jupyterhub.ts [--rounds N]
 * The hub runs in a lab client VM (test/lab/jupyterhub.ts) with PAM against
 * the lab's AD; its hook is skipped while a flag file exists, so rounds
 * alternate with and without it. Each spawn is bob's server started through
 * the REST API, timed until the server itself answers on its port
 * (serverUpMs: the hub's own readiness poll is too coarse), then stopped. bob's first spawn (his home and
 * folder are made) is a warm-up, not counted: the ratio is for every later
 * login, the common case. The hook's own time is read from the hub's log.
 */
import { clientExec, lab, labEnv, readLabSecret } from '../test/lab/harness.js';
import {
  HUB_CLIENT,
  HUB_COMPUTER,
  hubLog,
  setHook,
  serverUpMs,
  spawnMs,
  startHub,
  startLoginDaemon,
  stopHub,
  stopServer,
  upHubClient,
} from '../test/lab/jupyterhub.js';
import { stopLabSssd } from '../test/lab/sssd.js';

const args = process.argv.slice(2);
const i = args.indexOf('--rounds');
const rounds = Number(i >= 0 ? args[i + 1] : '5');
const TARGET = 1.1;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const env = labEnv();
  await upHubClient();
  try {
    await startHub({ config: 'toggle' });
    await setHook(true);
    await spawnMs('bob');
    await stopServer('bob');
    // The DSVM's case first: the daemon answers the hook over its socket.
    // Then the same without a daemon (the agent does the work in the hook's process).
    for (const daemon of [true, false]) {
      const stopDaemon = daemon ? await startLoginDaemon() : async () => undefined;
      try {
        const withHook: number[] = [];
        const without: number[] = [];
        for (let r = 0; r < rounds; r++) {
          // Alternating which goes first spreads any drift of the machine over both.
          for (const on of r % 2 === 0 ? [true, false] : [false, true]) {
            await setHook(on);
            (on ? withHook : without).push(await serverUpMs('bob'));
            await stopServer('bob');
          }
        }
        const via = daemon ? 'daemon' : 'local';
        const hookMs = (await hubLog())
          .split('\n')
          .map((l) => new RegExp(` dsvm-agent login bob: done via ${via} in (\\d+) ms`).exec(l)?.[1])
          .filter((x): x is string => x !== undefined)
          .slice(-rounds)
          .map(Number);
        const ratio = median(withHook) / median(without);
        const what = daemon ? 'daemon up' : 'no daemon';
        process.stdout.write(
          `jupyterhub (${what}): spawn-to-ready without the hook median ${median(without)} ms, with it ${median(withHook)} ms over ${rounds} rounds each; ` +
            `the hook itself (hub log, via ${via}) median ${hookMs.length ? median(hookMs) : NaN} ms\n` +
            `jupyterhub (${what}): ratio ${ratio.toFixed(2)} (target <= ${TARGET}) ${ratio <= TARGET ? 'OK' : 'OVER TARGET'}\n`,
        );
      } finally {
        await stopDaemon();
      }
    }
  } finally {
    await stopHub().catch(() => undefined);
    await stopLabSssd(HUB_CLIENT).catch(() => undefined);
    await clientExec(
      HUB_CLIENT,
      ['adcli', 'delete-computer', `--domain=${env.DOMAIN}`, `--login-user=${env.JOIN_USER}`, '--stdin-password', HUB_COMPUTER],
      { input: `${readLabSecret('join-password')}\n` },
    ).catch(() => undefined);
    await lab(['client-down', HUB_CLIENT]).catch(() => undefined);
  }
}

await main();
