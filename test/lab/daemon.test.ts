/**
 * The daemon in a lab client VM against the real DC and real sssd:
 * readiness and watchdog through the real systemd-notify binary to a
 * NOTIFY_SOCKET receiver, health turning Unhealthy within one check interval
 * when sssd stops and Healthy again when it returns, self-repair restarting
 * sssd, `status --json` matching /health, /health under 200 req/s while the
 * checks run, a SIGTERM stop under 5 s, and a DC that stalls for 60 s
 * setting off no rejoin (the keytab stays as it was).
 *
 * The share checks are not exercised here: the host kernel has no cifs, so
 * no client VM can mount the share; the VM-image e2e covers them. First boot
 * is done by hand (adcli join + sssd) and recorded in the state file, so
 * this test depends only on the daemon.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import t from 'tap';
import { LAB_SCRIPT, PROJECT_ROOT, clientExec, describeResult, fakesUrls, lab, labEnv, labSkipReason, readLabSecret } from './harness.js';
import { stopLabSssd, upJoinedClient } from './sssd.js';

const CLIENT = 'c6';
const IP = '10.77.0.16';
const HOSTNAME = 'dsvm-daemon-lab-0006';
const COMPUTER = 'DSVM-DMN-06';
const CONFIG = '/etc/dsvm-agent/daemon-lab.yaml';
const NOTIFY_SOCKET = '/run/dsvm-lab-notify.sock';
const NOTIFY_LOG = '/run/dsvm-lab-notify.log';
const PID_FILE = '/run/dsvm-lab-daemon.pid';
const AGENT = `${PROJECT_ROOT}/bin/dsvm-agent`;

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

const skip = labSkipReason();
if (skip) {
  t.plan(0, skip);
} else {
  const env = labEnv();
  const sh = (script: string, opts: { input?: string; timeoutMs?: number } = {}) =>
    clientExec(CLIENT, ['bash', '-c', `set -euo pipefail\n${script}`], opts);
  const must = async (t: TapTest, what: string, p: ReturnType<typeof sh>) => {
    const r = await p;
    if (r.exitCode !== 0) t.fail(describeResult(what, r));
    return r;
  };
  /** Runs a node snippet inside the client (its loopback is where the daemon listens). */
  const node = (code: string, timeoutMs = 60_000) => clientExec(CLIENT, ['node', '--input-type=module', '-e', code], { timeoutMs });
  const health = async (): Promise<Record<string, unknown>> => {
    const r = await node(
      `const r = await fetch('http://127.0.0.1:8642/health'); process.stdout.write(JSON.stringify({ status: r.status, body: await r.json() }));`,
      10_000,
    );
    const out = JSON.parse(r.stdout) as { status: number; body: Record<string, unknown> };
    if (out.status !== 200) throw new Error(`/health answered ${out.status}`);
    return out.body;
  };
  /** Poll /health until `want`; returns ms waited. */
  /** Milliseconds until `/health`'s body `b` satisfies the JavaScript expression `cond`, or -1 after limitMs. */
  const waitUntil = async (cond: string, limitMs: number): Promise<number> => {
    const r = await node(
      `const t0 = Date.now(); for (;;) { try { const b = await (await fetch('http://127.0.0.1:8642/health')).json(); if (${cond}) { console.log(Date.now() - t0); break; } } catch {} if (Date.now() - t0 > ${limitMs}) { console.log(-1); break; } await new Promise((r) => setTimeout(r, 100)); }`,
      limitMs + 10_000,
    );
    return Number(r.stdout.trim());
  };
  const waitFor = (want: string, limitMs: number): Promise<number> =>
    waitUntil(`b.ApplicationHealthState === ${JSON.stringify(want)}`, limitMs);
  /** Waits for one check's own state: Healthy alone can come before a check's first run has finished. */
  const waitForCheck = (id: string, state: string, limitMs: number): Promise<number> =>
    waitUntil(`b.checks.some((c) => c.id === ${JSON.stringify(id)} && c.state === ${JSON.stringify(state)})`, limitMs);
  let daemon: ChildProcess | undefined;
  const startDaemon = async (
    repair: boolean,
    o: { trustSchedule?: string; failuresBeforeRepair?: number; jitterSec?: number } = {},
  ): Promise<void> => {
    const urls = fakesUrls(CLIENT);
    const config = [
      `azure: { imdsEndpoint: "${urls.imds}" }`,
      `domain: { name: ${env.DOMAIN}, joinUser: ${env.JOIN_USER}, joinPassword: { file: /etc/dsvm-agent/join-password }, allowGroups: [${env.USERS_GROUP}] }`,
      'health:',
      '  listen: 127.0.0.1:8642',
      '  unhealthyOn: [domain-trust, identity-lookup, sssd]',
      '  metricsTextfile: /var/lib/dsvm-agent/metrics.prom',
      '  checks:',
      "    sssd: { schedule: '*/2 * * * * *' }",
      "    identity-lookup: { schedule: '*/2 * * * * *' }",
      `    domain-trust: { schedule: '${o.trustSchedule ?? '*/10 * * * * *'}' }`,
      `repair: { enabled: ${repair}, maxAttempts: 3, windowSec: 600, failuresBeforeRepair: ${o.failuresBeforeRepair ?? 3}, jitterSec: ${o.jitterSec ?? 0} }`,
      'scheduledEvents: { pollSec: 1 }',
    ].join('\n');
    // Read now: the client (and its vmId) appeared after this file started.
    const vmId = labEnv()[`CLIENT_VMID_${CLIENT.toUpperCase()}`] ?? '';
    if (!vmId) throw new Error(`no CLIENT_VMID_${CLIENT.toUpperCase()} in the lab env`);
    const state = JSON.stringify({
      version: 1,
      vmId: vmId.toLowerCase(),
      vmIdSource: 'imds',
      firstBootStartedAt: new Date(Date.now() - 60_000).toISOString(),
      firstBootCompletedAt: new Date().toISOString(),
      firstBootDurationMs: 42_000,
      tasks: {},
      facts: {},
    });
    const r = await sh(
      `mkdir -p /etc/dsvm-agent /var/lib/dsvm-agent && cat >${CONFIG} && printf '%s\\n' '${state}' >/var/lib/dsvm-agent/state.json && chmod 600 /var/lib/dsvm-agent/state.json`,
      { input: config },
    );
    if (r.exitCode !== 0) throw new Error(describeResult('write config', r));
    daemon = spawn(
      LAB_SCRIPT,
      [
        'exec',
        CLIENT,
        '-e',
        `NOTIFY_SOCKET=${NOTIFY_SOCKET}`,
        '-e',
        'WATCHDOG_USEC=2000000',
        '--',
        'bash',
        '-c',
        `echo $$ >${PID_FILE}; exec ${AGENT} --config ${CONFIG} run`,
      ],
      { cwd: PROJECT_ROOT, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    daemon.stderr?.on('data', () => undefined);
    for (let i = 0; i < 100; i++) {
      const up = await node(
        `try { await fetch('http://127.0.0.1:8642/health'); console.log('up'); } catch { console.log('down'); }`,
        10_000,
      );
      if (up.stdout.trim() === 'up') return;
      await new Promise((res) => setTimeout(res, 200));
    }
    throw new Error('the daemon did not serve /health within 20 s');
  };
  const stopDaemon = async (): Promise<number> => {
    const d = daemon;
    if (!d) return 0;
    daemon = undefined;
    const exited = new Promise<void>((res) => d.once('close', () => res()));
    const t0 = Date.now();
    await sh(`kill -TERM "$(cat ${PID_FILE})"`);
    await exited;
    return Date.now() - t0;
  };

  t.before(async () => {
    await upJoinedClient(CLIENT, IP, HOSTNAME, COMPUTER);
    // A NOTIFY_SOCKET receiver standing in for systemd: it logs every datagram (fds passed for BARRIER=1 are dropped, which releases the barrier).
    await sh(
      `rm -f ${NOTIFY_SOCKET} ${NOTIFY_LOG}; setsid /usr/bin/python3 -c 'import socket,sys
s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1])
with open(sys.argv[2], "a") as f:
  while True:
    f.write(s.recv(65536).decode().replace("\\n", " | ") + "\\n"); f.flush()' ${NOTIFY_SOCKET} ${NOTIFY_LOG} </dev/null >/dev/null 2>&1 & echo $! >/run/dsvm-lab-notify.pid; for i in $(seq 50); do [ -S ${NOTIFY_SOCKET} ] && exit 0; sleep 0.1; done; exit 1`,
    );
  });

  t.teardown(async () => {
    await stopDaemon().catch(() => undefined);
    await sh('kill "$(cat /run/dsvm-lab-notify.pid)" 2>/dev/null || true').catch(() => undefined);
    await stopLabSssd(CLIENT).catch(() => undefined);
    await clientExec(
      CLIENT,
      ['adcli', 'delete-computer', `--domain=${env.DOMAIN}`, `--login-user=${env.JOIN_USER}`, '--stdin-password', COMPUTER],
      {
        input: `${readLabSecret('join-password')}\n`,
      },
    ).catch(() => undefined);
    await lab(['client-down', CLIENT]).catch(() => undefined);
  });

  t.test('ready, healthy, metrics, status --json matches /health', async (t) => {
    await startDaemon(false);
    t.ok((await waitFor('Healthy', 20_000)) >= 0, 'Healthy once the checks ran');
    // Each asserted check is waited for in its own right: the first runs are
    // concurrent, and /health can say Healthy while one has not reported yet.
    for (const id of ['domain-trust', 'identity-lookup', 'sssd']) {
      t.ok((await waitForCheck(id, 'ok', 30_000)) >= 0, `${id} reports ok`);
    }
    const body = await health();
    const checks = body.checks as Array<{ id: string; state: string; reason: string }>;
    t.same(
      checks.filter((c) => c.state === 'fail'),
      [],
      'no failing check',
    );
    t.ok(
      checks.some((c) => c.id === 'domain-trust' && c.state === 'ok'),
      'the real keytab authenticates (adcli testjoin)',
    );
    t.ok(
      checks.some((c) => c.id === 'identity-lookup' && c.state === 'ok'),
      `${env.USERS_GROUP} resolves through sssd`,
    );
    const st = await must(t, 'status --json', clientExec(CLIENT, [AGENT, '--config', CONFIG, 'status', '--json']));
    const status = JSON.parse(st.stdout) as Record<string, unknown>;
    t.equal(status.source, 'daemon');
    const strip = (b: Record<string, unknown>) =>
      (b.checks as Array<Record<string, unknown>>).map(({ id, state, since, affectsHealth }) => ({ id, state, since, affectsHealth }));
    t.same(strip(status), strip(await health()), 'status --json carries the same checks as /health');
    t.equal(status.ApplicationHealthState, body.ApplicationHealthState);
    const table = await must(t, 'status', clientExec(CLIENT, [AGENT, '--config', CONFIG, 'status']));
    t.match(table.stdout, /CHECK\s+STATE\s+SINCE\s+REASON\s+LAST REPAIR/, 'readable table');
    const prom = await must(t, 'metrics textfile', sh('sleep 3; cat /var/lib/dsvm-agent/metrics.prom'));
    t.match(prom.stdout, /dsvm_agent_check_state\{check="sssd",state="ok"\} 1/, 'node-exporter textfile written');
    const notes = await must(t, 'notify log', sh(`cat ${NOTIFY_LOG}`));
    t.match(notes.stdout, /READY=1/, 'READY=1 through systemd-notify');
    t.match(notes.stdout, /MAINPID=\d+/, '--pid names the daemon');
    t.match(notes.stdout, /WATCHDOG=1/, 'watchdog pings (WATCHDOG_USEC=2 s)');
    t.match(notes.stdout, /STATUS=Healthy/, 'STATUS follows health');
  });

  t.test('/health under 200 requests/s for 10 s while checks run', async (t) => {
    const r = await node(
      // One second of warm-up (JIT, connection pool) before the measured 10 s.
      `for (let i = 0; i < 200; i++) { await fetch('http://127.0.0.1:8642/health').then((r) => r.text()); await new Promise((r) => setTimeout(r, 5)); }
       const lat = []; let errors = 0; const t0 = Date.now(); const jobs = [];
       for (let i = 0; i < 2000; i++) {
         const due = t0 + i * 5; const wait = due - Date.now(); if (wait > 0) await new Promise((r) => setTimeout(r, wait));
         const s = performance.now();
         jobs.push(fetch('http://127.0.0.1:8642/health').then(async (res) => { const b = await res.json(); if (res.status !== 200 || !b.ApplicationHealthState) errors++; lat.push(performance.now() - s); }, () => { errors++; }));
       }
       await Promise.all(jobs); lat.sort((a, b) => a - b);
       console.log(JSON.stringify({ n: lat.length, errors, p50: lat[Math.floor(lat.length * 0.5)], p99: lat[Math.floor(lat.length * 0.99)], max: lat.at(-1), seconds: (Date.now() - t0) / 1000 }));`,
      60_000,
    );
    const out = JSON.parse(r.stdout) as { n: number; errors: number; p50: number; p99: number; max: number; seconds: number };
    t.comment(`load: ${JSON.stringify(out)}`);
    t.equal(out.errors, 0, 'no error');
    t.equal(out.n, 2000, 'every request answered');
    // What this proves is that no check stalls the event loop while it runs
    // (a synchronous call on a dead share would hold every request for
    // seconds): the bound is far above scheduler noise on a loaded 2-core
    // machine (p99 of 114-185 ms seen there), far below such a stall. The
    // latency itself is measured against a baseline by `make bench`
    // (bench/daemon.ts), not judged here.
    t.ok(out.max < 1500, `no request held by a stalled event loop: max ${out.max.toFixed(1)} ms < 1500 ms (p99 ${out.p99.toFixed(1)} ms)`);
  });

  t.test('sssd stopped: Unhealthy within one check interval; back: Healthy', async (t) => {
    await must(
      t,
      'stop sssd',
      sh(
        'kill "$(cat /run/sssd.pid)"; for i in $(seq 50); do kill -0 "$(cat /run/sssd.pid)" 2>/dev/null || exit 0; sleep 0.1; done; exit 1',
      ),
    );
    const down = await waitFor('Unhealthy', 5000);
    t.ok(down >= 0 && down <= 3000, `Unhealthy after ${down} ms (sssd checked every 2 s)`);
    const body = await health();
    t.match(String(body.reason), /sssd/, 'the reason names sssd');
    await must(t, 'start sssd', sh('sssd -D --logger=files'));
    const up = await waitFor('Healthy', 10_000);
    t.ok(up >= 0, `Healthy again after ${up} ms`);
    const ms = await stopDaemon();
    t.ok(ms < 5000, `SIGTERM stop took ${ms} ms`);
    // The receiver logs asynchronously: give its last line a moment to land.
    let notes = await must(t, 'notify log', sh(`cat ${NOTIFY_LOG}`));
    for (let i = 0; i < 30 && !/STOPPING=1/.test(notes.stdout); i++) {
      await new Promise((r) => setTimeout(r, 100));
      notes = await must(t, 'notify log', sh(`cat ${NOTIFY_LOG}`));
    }
    t.match(notes.stdout, /STOPPING=1/, 'STOPPING=1 on SIGTERM');
  });

  t.test('self-repair restarts sssd, rate limited and counted', async (t) => {
    // Two failures in a row (sssd is checked every 2 s) and no jitter: the policy's own numbers are unit-tested.
    await startDaemon(true, { failuresBeforeRepair: 2, jitterSec: 0 });
    t.ok((await waitFor('Healthy', 20_000)) >= 0, 'Healthy');
    await must(
      t,
      'stop sssd',
      sh(
        'kill "$(cat /run/sssd.pid)"; for i in $(seq 50); do kill -0 "$(cat /run/sssd.pid)" 2>/dev/null || exit 0; sleep 0.1; done; exit 1',
      ),
    );
    const repaired = await waitUntil(
      `b.ApplicationHealthState === 'Healthy' && b.repairs.some((r) => r.action === 'restart-sssd' && r.succeeded >= 1)`,
      20_000,
    );
    t.ok(repaired >= 0, `repaired and Healthy after ${repaired} ms`);
    const body = await health();
    t.equal(body.ApplicationHealthState, 'Healthy', 'the daemon restarted sssd itself');
    const repair = (body.repairs as Array<Record<string, unknown>>).find((r) => r.action === 'restart-sssd');
    t.ok(repair && Number(repair.succeeded) >= 1, `restart-sssd recorded: ${JSON.stringify(repair)}`);
    const m = await node(`console.log(await (await fetch('http://127.0.0.1:8642/metrics')).text())`);
    t.match(m.stdout, /dsvm_agent_repairs_total\{action="restart-sssd",result="ok"\} [1-9]/, 'counted in metrics');
    await must(t, 'sssd runs', sh('kill -0 "$(cat /run/sssd.pid)"'));
    t.ok((await stopDaemon()) < 5000, 'stops under 5 s');
  });

  t.test('the DC stalls for 60 s, then answers again: no rejoin, the keytab is untouched', async (t) => {
    // domain-trust every 5 s and a repair after 2 failures in a row without jitter: one bad
    // run classified as a real failure would start a rejoin well within the minute.
    await startDaemon(true, { trustSchedule: '*/5 * * * * *', failuresBeforeRepair: 2, jitterSec: 0 });
    t.ok((await waitForCheck('domain-trust', 'ok', 30_000)) >= 0, 'domain-trust ok before');
    const keytab = async () => (await must(t, 'keytab hash', sh('sha256sum /etc/krb5.keytab'))).stdout.split(' ')[0];
    const before = await keytab();
    const frozen = await lab(['dc-freeze']);
    if (frozen.exitCode !== 0) t.fail(describeResult('dc-freeze', frozen));
    const t0 = Date.now();
    try {
      const failing = await waitForCheck('domain-trust', 'fail', 55_000);
      t.ok(failing >= 0, `domain-trust failed while the DC was stalled (after ${failing} ms)`);
      const during = (await health()).checks as Array<{ id: string; transient?: boolean; reason: string }>;
      t.comment(`during the stall: ${JSON.stringify(during.find((c) => c.id === 'domain-trust'))}`);
      await new Promise((r) => setTimeout(r, Math.max(0, 60_000 - (Date.now() - t0))));
    } finally {
      const thawed = await lab(['dc-thaw']);
      if (thawed.exitCode !== 0) t.fail(describeResult('dc-thaw', thawed));
    }
    t.ok((await waitForCheck('domain-trust', 'ok', 90_000)) >= 0, 'domain-trust ok again once the DC answers');
    const m = await node(`console.log(await (await fetch('http://127.0.0.1:8642/metrics')).text())`);
    const started = m.stdout
      .split('\n')
      .filter((l) => /^dsvm_agent_repairs_total\{action="rejoin",result="(ok|failed|gave-up)"\} [1-9]/.test(l));
    t.same(started, [], 'zero rejoins started');
    const body = await health();
    t.notOk(
      (body.repairs as Array<Record<string, unknown>>).some((r) => r.action === 'rejoin' && Number(r.succeeded) + Number(r.failed) > 0),
      'no rejoin in the repair records',
    );
    t.equal(await keytab(), before, 'the keytab (machine password) is the one from before the stall');
    t.ok((await stopDaemon()) < 5000, 'stops under 5 s');
  });
}
