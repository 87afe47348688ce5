/**
 * The spawn benchmark's hub (bench/jupyterhub.ts): the lab's hub client
 * (test/lab/jupyterhub.ts sets it up: joined, sssd, the package's paths) with
 * the packaged hub config, whose pre_spawn_hook is then replaced by one that
 * runs one of several arms, chosen per spawn by a file, so every arm runs in
 * the same hub process, interleaved:
 *
 * - `none`: nothing (the baseline);
 * - `hook`: the shipped hook's entry, dsvm_agent_pre_spawn_hook;
 * - `cli`: the hook's other way, `dsvm-agent login` as a child
 *   (run_agent): what the hook did for every spawn before it asked the
 *   daemon over its socket;
 * - `exec-floor`: `/bin/true` through the same asyncio child handling:
 *   what any hook that starts a process costs the hub;
 * - `node-floor`: `node -e 0` the same way: what any hook that starts the
 *   agent's runtime costs, before the agent does anything.
 *
 * The wrapper stamps the hook's start and end (epoch ns) into a file, and
 * the spawn's own clock runs in the same VM, so each spawn splits into
 * before the hook, the hook, and after it (the server's own start).
 *
 * startHub in test/lab/jupyterhub.ts takes only the test's two configs;
 * this module starts the same hub, the same way, with its own.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from '../test/lab/harness.js';
import { HUB_URL, inHub, launchHub } from '../test/lab/jupyterhub.js';

export const ARMS = ['none', 'hook', 'cli', 'exec-floor', 'node-floor'] as const;
export type Arm = (typeof ARMS)[number];

/** The single-user servers listen here, one at a time: the bench polls it. */
const SERVER_PORT = 8891;
const ARM_FILE = '/run/jh-lab/bench-arm';
const STAMPS = '/run/jh-lab/bench-stamps';
/**
 * The hub, its servers (they inherit it) and the bench's clock run at this
 * nice value: the lab machine is shared with other jobs (a load of 4 on 2
 * cores was seen), whose CPU otherwise lands in the servers' Python start
 * and swamps what is measured. Every arm gets the same priority; the
 * daemon, which the hook asks, keeps the default one.
 */
const PRIORITY = -10;

/** The packaged hub config (what the DSVM runs: its hook, its spawner class), then the bench's hook over it. */
const BENCH_HUB_CONFIG = `${readFileSync(path.join(PROJECT_ROOT, 'packaging', 'jupyterhub', 'jupyterhub_config.py'), 'utf8')}
# The bench: the same hook, or another arm, per spawn.
import asyncio, time
import dsvm_agent_hook
async def _child(*argv):
    proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True)
    await proc.communicate()
async def bench_hook(spawner):
    with open("${ARM_FILE}") as f:
        arm = f.read().strip()
    started = time.time_ns()
    if arm == "hook":
        await dsvm_agent_hook.dsvm_agent_pre_spawn_hook(spawner)
    elif arm == "cli":
        await dsvm_agent_hook.run_agent(spawner.user.name, logger=spawner.log)
    elif arm == "exec-floor":
        await _child("/bin/true")
    elif arm == "node-floor":
        await _child("node", "-e", "0")
    with open("${STAMPS}", "a") as f:
        f.write("%s %d %d\\n" % (arm, started, time.time_ns()))
c.Spawner.pre_spawn_hook = bench_hook
# The bench polls the server itself: a fixed port, and the spawn request answered at once.
c.Spawner.port = ${SERVER_PORT}
c.JupyterHub.slow_spawn_timeout = 0
# Lab only: a service the bench uses to start and stop servers.
c.JupyterHub.services = [{"name": "dsvm-lab", "api_token": open("/etc/jupyterhub/lab-api-token").read().strip()}]
c.JupyterHub.load_roles = [{"name": "dsvm-lab", "scopes": ["admin:users", "admin:servers"], "services": ["dsvm-lab"]}]
`;

/** Starts the bench's hub (as test/lab/jupyterhub.ts starts the test's); waits for its login page. */
export async function startBenchHub(): Promise<void> {
  await launchHub(BENCH_HUB_CONFIG, { label: 'bench', prepare: `echo none >${ARM_FILE}\n: >${STAMPS}`, nice: PRIORITY });
}

/** One spawn, split at the hook: milliseconds before it, in it, and after it until the server answers. */
export interface SpawnTiming {
  arm: Arm;
  totalMs: number;
  beforeMs: number;
  hookMs: number;
  afterMs: number;
}

/**
 * Starts USER's server under ARM, timed from the REST call to the server's
 * first answer on its port (polled every 20 ms inside the VM: the hub's own
 * readiness poll waits jittered, doubling intervals, seconds of noise that
 * has nothing to do with the hook); then waits, untimed, until the hub too
 * counts it ready, stops it, and waits until it is gone.
 */
export async function timedSpawn(user: string, arm: Arm): Promise<SpawnTiming> {
  const out = await inHub(
    `renice -n ${PRIORITY} -p $$ >/dev/null
set -uo pipefail
api() { curl -s -H @/etc/jupyterhub/lab-api-header -o /tmp/api.out -w '%{http_code}' "$@"; }
ready() { python3 -c 'import json,sys; u=json.load(open("/tmp/api.out")); sys.exit(0 if (bool(u.get("server")) == (sys.argv[1] == "up")) and not u.get("pending") else 1)' "$1"; }
echo ${arm} >${ARM_FILE}
: >${STAMPS}
code=$(api -X POST ${HUB_URL}/hub/api/users/${user})
[ "$code" = 201 ] || [ "$code" = 409 ] || { echo "create user ${user}: $code $(cat /tmp/api.out)" >&2; exit 1; }
t0=$(date +%s%N)
code=$(api -X POST ${HUB_URL}/hub/api/users/${user}/server)
[ "$code" = 201 ] || [ "$code" = 202 ] || { echo "spawn ${user}: $code $(cat /tmp/api.out)" >&2; exit 1; }
up=0
for i in $(seq 3000); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:${SERVER_PORT}/user/${user}/api)" = 200 ] && { up=1; break; }
  sleep 0.02
done
t1=$(date +%s%N)
[ $up = 1 ] || { echo "${user}'s server never answered" >&2; exit 1; }
for i in $(seq 600); do api ${HUB_URL}/hub/api/users/${user} >/dev/null; ready up && break; sleep 0.05; done
code=$(api -X DELETE ${HUB_URL}/hub/api/users/${user}/server)
case $code in 204|202) ;; *) echo "stop ${user}: $code $(cat /tmp/api.out)" >&2; exit 1 ;; esac
for i in $(seq 300); do api ${HUB_URL}/hub/api/users/${user} >/dev/null; ready down && break; sleep 0.1; done
echo "$t0 $t1 $(tail -n 1 ${STAMPS})"`,
    { timeoutMs: 180_000 },
  );
  const [t0, t1, stampArm, h0, h1] = out.trim().split(' ');
  if (stampArm !== arm) throw new Error(`spawn under ${arm}: the hook's last stamp is ${stampArm ?? 'missing'} (did the hook run?)`);
  const ms = (a: string | undefined, b: string | undefined): number => Number((BigInt(b!) - BigInt(a!)) / 1000n) / 1000;
  return { arm, totalMs: ms(t0, t1), beforeMs: ms(t0, h0), hookMs: ms(h0, h1), afterMs: ms(h1, t1) };
}
