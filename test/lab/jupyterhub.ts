/**
 * A real JupyterHub in a lab client VM, as the DSVM runs it: Debian's
 * jupyterhub (3.0) as root, PAMAuthenticator (the `login` PAM service, whose
 * common-auth/common-account reach the lab's AD through pam_sss), the
 * LocalProcessSpawner starting the classic notebook server as the user, and
 * the shipped hook as `c.Spawner.pre_spawn_hook`. Used by
 * test/lab/jupyterhub.test.ts and bench/jupyterhub.ts.
 *
 * The client sees the host's /usr; the package's paths are made inside its
 * private mount namespace only: overlays on /usr/sbin and /usr/share hold
 * /usr/sbin/dsvm-agent (a link to this checkout's bin/dsvm-agent) and
 * /usr/share/dsvm-agent/jupyterhub/dsvm_agent_hook.py, so the hub config is
 * byte for byte the one packaging/jupyterhub/README.md gives.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { launchChromiumIn, type HubBrowser } from '../helpers/jupyterhub-browser.js';
import { clientExec, describeResult, labEnv, PROJECT_ROOT, type ExecOptions } from './harness.js';
import { upJoinedClient } from './sssd.js';

export const HUB_CLIENT = 'c12';
export const HUB_IP = '10.77.0.40';
export const HUB_URL = `http://${HUB_IP}:8000`;
const HOSTNAME = 'dsvm-jupyter-0012';
export const HUB_COMPUTER = 'DSVM-JH-12';
export const HUB_LOG = '/var/log/jupyterhub.log';
/** Where the DSVM keeps its hub config (the README's path). */
export const HUB_CONFIG = '/etc/jupyterhub/jupyterhub_config.py';
/** The agent's own bound in the lab (the product's default). */
export const LOGIN_TIMEOUT_MS = 3000;
/** The hook's backstop (dsvm_agent_hook.TIMEOUT_SECONDS). */
export const HOOK_BOUND_MS = 5000;

/** The hub config the DSVM gets: the packaged file (the README's snippet), nothing else. */
export const DSVM_HUB_CONFIG = readFileSync(path.join(PROJECT_ROOT, 'packaging', 'jupyterhub', 'jupyterhub_config.py'), 'utf8');

/** The bench hub's single-user servers listen here (one at a time). */
const BENCH_SERVER_PORT = 8890;

/**
 * The bench's hub: the same hook, skipped while /run/jh-lab/no-hook exists,
 * so spawns with and without it alternate in one hub process.
 */
const TOGGLE_HUB_CONFIG = `import os, sys
sys.path.insert(0, "/usr/share/dsvm-agent/jupyterhub")
from dsvm_agent_hook import dsvm_agent_pre_spawn_hook
async def bench_hook(spawner):
    if not os.path.exists("/run/jh-lab/no-hook"):
        await dsvm_agent_pre_spawn_hook(spawner)
c.Spawner.pre_spawn_hook = bench_hook
# The bench polls the server itself (serverUpMs): a fixed port to poll, and the spawn request answered at once.
c.Spawner.port = ${BENCH_SERVER_PORT}
c.JupyterHub.slow_spawn_timeout = 0
`;

/** Whether the bench hub runs the hook for the next spawns. */
export async function setHook(on: boolean): Promise<void> {
  await inHub(on ? 'rm -f /run/jh-lab/no-hook' : 'touch /run/jh-lab/no-hook');
}

/**
 * What the lab adds, after the DSVM's lines: a service token (read from a
 * root-only file, never in the config or argv) so the test and the bench can
 * time spawns through the REST API.
 */
const LAB_HUB_CONFIG = `
# Lab only: a service the test and bench use to start and stop servers.
c.JupyterHub.services = [{"name": "dsvm-lab", "api_token": open("/etc/jupyterhub/lab-api-token").read().strip()}]
c.JupyterHub.load_roles = [{"name": "dsvm-lab", "scopes": ["admin:users", "admin:servers"], "services": ["dsvm-lab"]}]
`;

/** Runs a bash script in the hub's client; throws with its output on failure. */
export async function inHub(script: string, opts: ExecOptions = {}): Promise<string> {
  const r = await clientExec(HUB_CLIENT, ['bash', '--norc', '--noprofile', '-c', script], opts);
  if (r.exitCode !== 0) throw new Error(describeResult(script.split('\n')[0]!, r));
  return r.stdout;
}

/** Runs a bash script in the hub's client; the result as data. */
export function tryInHub(script: string, opts: ExecOptions = {}) {
  return clientExec(HUB_CLIENT, ['bash', '--norc', '--noprofile', '-c', script], opts);
}

const SETUP = String.raw`set -euo pipefail
repo=$1 allow=$2 domain=$3 join_user=$4 timeout=$5
# sssd refuses users outside the allowed groups at PAM's account step, as the agent's sssd.conf does.
sed -i -E "s/^access_provider = .*/access_provider = simple\nsimple_allow_groups = $allow/" /etc/sssd/sssd.conf
kill "$(cat /run/sssd.pid)"
for i in $(seq 50); do [ -e /run/sssd.pid ] || break; sleep 0.1; done
rm -f /var/lib/sss/db/* /var/lib/sss/mc/*
sssd -D --logger=files
for i in $(seq 50); do getent passwd alice >/dev/null && break; sleep 0.2; done
# The package's paths, in this VM's mount namespace only (tmpfs: an overlay's upper layer cannot be on /var's overlay).
mkdir -p /run/jh-lab
mount -t tmpfs -o mode=0700 tmpfs /run/jh-lab
for d in sbin share; do
  mkdir -p /run/jh-lab/$d/upper /run/jh-lab/$d/work
  mount -t overlay overlay -o "lowerdir=/usr/$d,upperdir=/run/jh-lab/$d/upper,workdir=/run/jh-lab/$d/work" /usr/$d
done
ln -s "$repo/bin/dsvm-agent" /usr/sbin/dsvm-agent
install -d /usr/share/dsvm-agent/jupyterhub
install -m 0644 "$repo"/packaging/jupyterhub/*.py /usr/share/dsvm-agent/jupyterhub/
mkdir -p /etc/dsvm-agent /var/lib/jupyterhub
cat >/etc/dsvm-agent/config.yaml <<EOF
domain: { name: $domain, joinUser: $join_user, joinPassword: { file: /etc/dsvm-agent/join-password }, allowGroups: [$allow] }
workspace: { loginTimeoutMs: $timeout }
EOF
`;

/** The hub's client VM: joined, sssd with the allowed group, the package's paths, the agent's config. */
export async function upHubClient(): Promise<void> {
  const env = labEnv();
  await upJoinedClient(HUB_CLIENT, HUB_IP, HOSTNAME, HUB_COMPUTER);
  const r = await clientExec(HUB_CLIENT, [
    'bash',
    '--norc',
    '-c',
    SETUP,
    'setup',
    PROJECT_ROOT,
    env.USERS_GROUP,
    env.DOMAIN,
    env.JOIN_USER,
    String(LOGIN_TIMEOUT_MS),
  ]);
  if (r.exitCode !== 0) throw new Error(describeResult('hub client setup', r));
}

/** Starts the hub with the DSVM's config (or the bench's switchable hook); waits for its login page. */
export async function startHub(opts: { config: 'dsvm' | 'toggle' }): Promise<void> {
  await launchHub((opts.config === 'dsvm' ? DSVM_HUB_CONFIG : TOGGLE_HUB_CONFIG) + LAB_HUB_CONFIG, { label: opts.config });
}

/**
 * Starts a hub on `config` with a fresh API token for the lab's service and
 * waits for its login page. `prepare`: more set-up lines (run under umask
 * 077); `nice`: the hub's priority (the bench's, on a shared machine).
 */
export async function launchHub(config: string, opts: { label: string; prepare?: string; nice?: number }): Promise<void> {
  const token = randomBytes(24).toString('hex');
  await inHub(
    `umask 077
head -c ${token.length} >/etc/jupyterhub/lab-api-token
printf 'Authorization: token %s\\n' "$(cat /etc/jupyterhub/lab-api-token)" >/etc/jupyterhub/lab-api-header
${opts.prepare ?? ''}`,
    { input: token },
  );
  await inHub(`cat >${HUB_CONFIG}`, { input: config });
  // Debian's configurable-http-proxy finds its modules only with Debian's node or NODE_PATH.
  await inHub(
    `cd /var/lib/jupyterhub
echo "=== hub start $(date -Is) config=${opts.label}" >>${HUB_LOG}
NODE_PATH=/usr/share/nodejs setsid ${opts.nice === undefined ? '' : `nice -n ${opts.nice} `}jupyterhub -f ${HUB_CONFIG} </dev/null >>${HUB_LOG} 2>&1 &
echo $! >/run/jupyterhub.pid
for i in $(seq 150); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' ${HUB_URL}/hub/login)" = 200 ] && exit 0
  kill -0 "$(cat /run/jupyterhub.pid)" 2>/dev/null || break
  sleep 0.2
done
tail -n 30 ${HUB_LOG} >&2
exit 1`,
    { timeoutMs: 60_000 },
  );
}

/** Stops the hub (it stops the single-user servers and the proxy on its way out). */
export async function stopHub(): Promise<void> {
  await tryInHub(`pid=$(cat /run/jupyterhub.pid 2>/dev/null) || exit 0
kill -TERM "$pid" 2>/dev/null
for i in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -KILL "$pid" 2>/dev/null
rm -f /run/jupyterhub.pid
# Anything it left (after a SIGKILL), in this VM's network namespace only: pids are the host's.
me=$(readlink /proc/self/ns/net)
for p in /proc/[0-9]*; do
  [ "$(readlink "$p/ns/net" 2>/dev/null)" = "$me" ] || continue
  tr '\\0' ' ' <"$p/cmdline" 2>/dev/null | grep -Eq 'jupyterhub-singleuser|configurable-http-proxy|ipykernel' && kill -KILL "\${p#/proc/}" 2>/dev/null
done
exit 0`);
}

export const hubLog = (): Promise<string> => inHub(`cat ${HUB_LOG}`);

const API = String.raw`set -uo pipefail
api() { curl -s -H @/etc/jupyterhub/lab-api-header -o /tmp/api.out -w '%{http_code}' "$@"; }
`;

/**
 * Starts USER's server through the REST API and waits until the hub says it
 * is ready; returns the wall time measured inside the VM (no nsenter in it).
 */
export async function spawnMs(user: string): Promise<number> {
  const out = await inHub(
    `${API}
code=$(api -X POST ${HUB_URL}/hub/api/users/${user})
[ "$code" = 201 ] || [ "$code" = 409 ] || { echo "create user ${user}: $code $(cat /tmp/api.out)" >&2; exit 1; }
t0=$(date +%s%N)
code=$(api -X POST ${HUB_URL}/hub/api/users/${user}/server)
case $code in
  201) ;;
  202) for i in $(seq 600); do
         api ${HUB_URL}/hub/api/users/${user} >/dev/null
         python3 -c 'import json,sys; u=json.load(open("/tmp/api.out")); sys.exit(0 if u.get("server") and not u.get("pending") else 1)' && break
         sleep 0.05
       done ;;
  *) echo "spawn ${user}: $code $(cat /tmp/api.out)" >&2; exit 1 ;;
esac
echo $(( ($(date +%s%N) - t0) / 1000000 ))`,
    { timeoutMs: 120_000 },
  );
  return Number(out.trim());
}

/**
 * The bench's spawn time: from the spawn request until USER's single-user
 * server answers on its port, polled every 20 ms inside the VM. The hub's
 * own readiness check polls with a jittered exponential backoff (random
 * waits from 0.2 s, doubling), which adds up to seconds of noise that has
 * nothing to do with what ran before the server; this sees the server's
 * first answer. Then waits (untimed) until the hub also counts it ready.
 */
export async function serverUpMs(user: string): Promise<number> {
  const out = await inHub(
    `${API}
code=$(api -X POST ${HUB_URL}/hub/api/users/${user})
[ "$code" = 201 ] || [ "$code" = 409 ] || { echo "create user ${user}: $code $(cat /tmp/api.out)" >&2; exit 1; }
t0=$(date +%s%N)
code=$(api -X POST ${HUB_URL}/hub/api/users/${user}/server)
[ "$code" = 201 ] || [ "$code" = 202 ] || { echo "spawn ${user}: $code $(cat /tmp/api.out)" >&2; exit 1; }
for i in $(seq 3000); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:${BENCH_SERVER_PORT}/user/${user}/api)" = 200 ] && break
  sleep 0.02
done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
for i in $(seq 600); do
  api ${HUB_URL}/hub/api/users/${user} >/dev/null
  python3 -c 'import json,sys; u=json.load(open("/tmp/api.out")); sys.exit(0 if u.get("server") and not u.get("pending") else 1)' && break
  sleep 0.05
done
echo $ms`,
    { timeoutMs: 120_000 },
  );
  return Number(out.trim());
}

/** Stops USER's server and waits until it is gone. */
export async function stopServer(user: string): Promise<void> {
  await inHub(
    `${API}
code=$(api -X DELETE ${HUB_URL}/hub/api/users/${user}/server)
case $code in 204|202|400) ;; *) echo "stop ${user}: $code $(cat /tmp/api.out)" >&2; exit 1 ;; esac
for i in $(seq 300); do
  api ${HUB_URL}/hub/api/users/${user} >/dev/null
  python3 -c 'import json,sys; u=json.load(open("/tmp/api.out")); sys.exit(0 if not u.get("server") and not u.get("pending") else 1)' && exit 0
  sleep 0.1
done
echo "${user}'s server did not stop" >&2
exit 1`,
    { timeoutMs: 60_000 },
  );
}

/**
 * The agent's login service on its real control socket, as `dsvm-agent run`
 * serves it (the same small daemon as test/lab/login.test.ts), so a hook's
 * login takes the DSVM's path: asked over the socket, answered by the daemon.
 * Returns a stop function.
 */
export async function startLoginDaemon(): Promise<() => Promise<void>> {
  const script = `import { loadConfig } from '${PROJECT_ROOT}/src/agent/config.ts';
import { createBase } from '${PROJECT_ROOT}/src/agent/context.ts';
import { serveIpc } from '${PROJECT_ROOT}/src/agent/ipc.ts';
import { LoginService } from '${PROJECT_ROOT}/src/tasks/workspace/service.ts';
const base = createBase({ logLevel: 'warn' });
const cfg = await loadConfig('/etc/dsvm-agent/config.yaml');
const logins = new LoginService({ cfg, paths: base.paths, run: base.run, log: base.log });
await serveIpc(base.paths.socketFile, async (req) => req.op === 'login' ? logins.handle(req.user, { deadlineMs: req.deadlineMs, shareHealthy: true }) : {}, base.log);
`;
  await inHub('cat >/run/jh-lab/login-daemon.mts', { input: script });
  await inHub(
    `cd ${PROJECT_ROOT}
setsid node_modules/.bin/tsx /run/jh-lab/login-daemon.mts </dev/null >/run/jh-lab/login-daemon.log 2>&1 &
echo $! >/run/jh-lab/login-daemon.pid
for i in $(seq 150); do [ -S /run/dsvm-agent/agent.sock ] && exit 0; sleep 0.1; done
cat /run/jh-lab/login-daemon.log >&2
exit 1`,
    { timeoutMs: 60_000 },
  );
  // setsid made it a process group leader: the group is tsx and its node.
  return async () => {
    await tryInHub('kill -KILL -- -"$(cat /run/jh-lab/login-daemon.pid)"; rm -f /run/dsvm-agent/agent.sock /run/jh-lab/login-daemon.pid');
  };
}

/**
 * Debian's chromium inside the hub client's network namespace only (the lab
 * bridge is not reachable from the host's); see test/helpers/jupyterhub-browser.ts.
 */
export async function launchBrowser(): Promise<HubBrowser> {
  const pid = labEnv()[`CLIENT_PID_${HUB_CLIENT.toUpperCase()}`];
  if (!pid) throw new Error(`no CLIENT_PID_${HUB_CLIENT.toUpperCase()} in the lab's facts`);
  return launchChromiumIn(['-t', pid, '-n']);
}
