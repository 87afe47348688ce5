/**
 * Benchmark: JupyterHub spawn-to-ready with the shipped pre_spawn_hook
 * against the same spawn without it, in one hub process, as a ratio (target
 * at most 1.1), next to floor arms that show what any hook of that kind
 * costs (bench/jupyterhub-hub.ts lists the arms).
 *
 * On the host (root, lab up):   npx tsx bench/jupyterhub.ts [--rounds N]
 * The hub runs in a lab client VM (test/lab/jupyterhub.ts) with PAM against
 * the lab's AD. Each spawn is bob's server started through the REST API,
 * timed until the server itself answers on its port, then stopped. bob's
 * first spawn (his home and folder are made) is a warm-up, not counted: the
 * ratio is for every later login, the common case. Arms are interleaved and
 * their order rotates every round, so drift of the machine and any effect of
 * the arm before land on every arm alike; each spawn is split at the hook
 * (before it / the hook / after it) so a difference in the total can be
 * placed.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { clientExec, lab, labEnv, PROJECT_ROOT, readLabSecret } from '../test/lab/harness.js';
import { HUB_CLIENT, HUB_COMPUTER, hubLog, startLoginDaemon, stopHub, upHubClient } from '../test/lab/jupyterhub.js';
import { stopLabSssd } from '../test/lab/sssd.js';
import { startBenchHub, timedSpawn, type Arm, type SpawnTiming } from './jupyterhub-hub.js';

const args = process.argv.slice(2);
const i = args.indexOf('--rounds');
const rounds = Number(i >= 0 ? args[i + 1] : '15');
const TARGET = 1.1;
const USER = 'bob';
const RAW_DIR = path.join(PROJECT_ROOT, 'build', 'bench');

/** The q-quantile (0..1) by linear interpolation. */
function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  return s[lo]! + (s[Math.min(lo + 1, s.length - 1)]! - s[lo]!) * (pos - lo);
}
const median = (xs: number[]): number => quantile(xs, 0.5);
const ms = (x: number): string => `${Math.round(x)}`;

const MODES: { name: string; daemon: boolean; arms: Arm[]; via: string }[] = [
  // The DSVM's case: the daemon runs; the hook asks it over its socket.
  { name: 'daemon up', daemon: true, arms: ['none', 'hook', 'cli', 'exec-floor'], via: 'daemon' },
  // The daemon down: the hook runs the agent, which does the work in its own process.
  { name: 'no daemon', daemon: false, arms: ['none', 'hook', 'node-floor'], via: 'local' },
];

const WHAT: Record<Arm, string> = {
  none: 'no hook (baseline)',
  hook: 'the shipped hook',
  cli: 'dsvm-agent login as a child (the hook before it asked the daemon)',
  'exec-floor': 'floor: /bin/true as a child',
  'node-floor': 'floor: node -e 0 as a child',
};

/** Runs every arm `rounds` times, interleaved, each round's order rotated by one. */
async function measure(arms: Arm[]): Promise<Map<Arm, SpawnTiming[]>> {
  const got = new Map<Arm, SpawnTiming[]>(arms.map((a) => [a, []]));
  for (const arm of arms) await timedSpawn(USER, arm); // warm-up, uncounted: caches, the daemon's first login
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < arms.length; k++) {
      const arm = arms[(r + k) % arms.length]!;
      got.get(arm)!.push(await timedSpawn(USER, arm));
    }
  }
  return got;
}

/**
 * Per arm: the spawn's total (median, p25-p75, min-max) and, paired with the
 * baseline spawn of the same round (adjacent in time, so under the same
 * load of the machine), the ratio and where the difference lies: before the
 * hook, in it, after it. The verdict is the median of those paired ratios.
 */
function report(mode: string, got: Map<Arm, SpawnTiming[]>): string[] {
  const base = got.get('none')!;
  const out: string[] = [
    `jupyterhub (${mode}), ${rounds} rounds, arms interleaved, in ms: spawn total median (p25-p75, min-max); paired with the same round's no-hook spawn: ratio median (p25-p75), and the median differences before the hook, in it, after it`,
  ];
  let verdict = NaN;
  for (const [arm, xs] of got) {
    const total = xs.map((s) => s.totalMs);
    const ratios = xs.map((s, r) => s.totalMs / base[r]!.totalMs);
    const diff = (f: (s: SpawnTiming) => number): string => {
      const d = median(xs.map((s, r) => f(s) - f(base[r]!)));
      return `${d >= 0 ? '+' : ''}${ms(d)}`;
    };
    if (arm === 'hook') verdict = median(ratios);
    out.push(
      `  ${arm.padEnd(10)} total ${ms(median(total)).padStart(5)} (${ms(quantile(total, 0.25))}-${ms(quantile(total, 0.75))}, ${ms(Math.min(...total))}-${ms(Math.max(...total))})` +
        `  ratio ${median(ratios).toFixed(2)} (${quantile(ratios, 0.25).toFixed(2)}-${quantile(ratios, 0.75).toFixed(2)})` +
        `  total ${diff((s) => s.totalMs)}: before ${diff((s) => s.beforeMs)}, hook ${ms(median(xs.map((s) => s.hookMs)))}, after ${diff((s) => s.afterMs)}` +
        `  ${WHAT[arm]}`,
    );
  }
  out.push(`jupyterhub (${mode}): ratio ${verdict.toFixed(2)} (target <= ${TARGET}) ${verdict <= TARGET ? 'OK' : 'OVER TARGET'}`);
  return out;
}

async function main(): Promise<void> {
  const env = labEnv();
  await upHubClient();
  try {
    await startBenchHub();
    await timedSpawn(USER, 'hook'); // bob's first login: his home and folder are made
    for (const mode of MODES) {
      const stopDaemon = mode.daemon ? await startLoginDaemon() : async () => undefined;
      try {
        const before = (await hubLog()).split('\n').length;
        const got = await measure(mode.arms);
        // The hook took the way this mode is about, every time (its line in the hub's log).
        const lines = (await hubLog()).split('\n').slice(before);
        const hookRuns = lines.filter((l) => new RegExp(` dsvm-agent login ${USER}: done via ${mode.via} in \\d+ ms`).test(l)).length;
        // hook and cli both reach the daemon when it runs; warm-up included.
        const wantVia = (rounds + 1) * mode.arms.filter((a) => a === 'hook' || a === 'cli').length;
        process.stdout.write(`${report(mode.name, got).join('\n')}\n`);
        // Every spawn, for a closer look than the medians.
        await mkdir(RAW_DIR, { recursive: true });
        await writeFile(
          path.join(RAW_DIR, `jupyterhub-${mode.daemon ? 'daemon' : 'no-daemon'}.json`),
          JSON.stringify(Object.fromEntries(got), null, 1),
        );
        if (hookRuns !== wantVia) {
          throw new Error(
            `${mode.name}: ${hookRuns} hub log lines say "done via ${mode.via}", expected ${wantVia}:\n${lines.slice(-20).join('\n')}`,
          );
        }
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
