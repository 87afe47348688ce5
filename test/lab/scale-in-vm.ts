/**
 * One lab client VM made ready for a scale-in: joined for real (adcli join
 * + sssd), its DNS record registered on the DC, the share "mounted", open
 * handles of its own and of other VMs in the Files fake, and the daemon
 * running. Shared by test/lab/scale-in.test.ts and bench/scale-in.ts.
 *
 * Two stand-ins, both said where they are made: the host has no cifs
 * module, so the share is a tmpfs mounted at share.mountPoint under the
 * share's UNC name (the unmount the agent does is the same syscall); and
 * startLabSssd runs sssd with dyndns_update = false, so the A record is
 * registered the way sssd's dyndns does it: nsupdate -g (GSS-TSIG) as the
 * machine, with its keytab.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { LAB_SCRIPT, PROJECT_ROOT, clientExec, dcExec, describeResult, fakesUrls, lab, labEnv, readLabSecret } from './harness.js';
import { startLabSssd, stopLabSssd } from './sssd.js';

export const AGENT = `${PROJECT_ROOT}/bin/dsvm-agent`;
const CONFIG = '/etc/dsvm-agent/scale-in-lab.yaml';
const PID_FILE = '/run/dsvm-lab-scale-in.pid';
export const MOUNT_POINT = '/data/workspace';
export const JOURNAL = '/var/lib/dsvm-agent/scheduled-events.json';
export const DAEMON_LOG = '/run/dsvm-lab-scale-in.log';

export interface ScaleInVm {
  client: string;
  ip: string;
  hostname: string;
  computer: string;
}

export const fqdnOf = (vm: ScaleInVm): string => `${vm.computer.toLowerCase()}.${labEnv().DOMAIN}`;

const sh = (vm: ScaleInVm, script: string, opts: { input?: string; timeoutMs?: number } = {}) =>
  clientExec(vm.client, ['bash', '-c', `set -euo pipefail\n${script}`], opts);

async function must(what: string, p: ReturnType<typeof sh>): Promise<string> {
  const r = await p;
  if (r.exitCode !== 0) throw new Error(describeResult(what, r));
  return r.stdout;
}

/** A node snippet inside the client, where the fakes' loopback is. */
export async function inClient<T>(vm: ScaleInVm, code: string, timeoutMs = 60_000): Promise<T> {
  const r = await clientExec(vm.client, ['node', '--input-type=module', '-e', code], { timeoutMs });
  if (r.exitCode !== 0) throw new Error(describeResult('node in the client', r));
  return JSON.parse(r.stdout.trim().split('\n').at(-1) ?? 'null') as T;
}

/** The fakes' control API of this client (POST with a body, or GET). */
export function control<T = unknown>(vm: ScaleInVm, route: string, body?: unknown): Promise<T> {
  const url = new URL(route, fakesUrls(vm.client).control).toString();
  const init =
    body === undefined
      ? '{}'
      : `{ method: 'POST', headers: { 'content-type': 'application/json' }, body: ${JSON.stringify(JSON.stringify(body))} }`;
  return inClient<T>(vm, `const r = await fetch(${JSON.stringify(url)}, ${init}); process.stdout.write(JSON.stringify(await r.json()));`);
}

export async function bringUp(vm: ScaleInVm): Promise<void> {
  const up = await lab(['client-up', vm.client, vm.ip, vm.hostname], { timeoutMs: 120_000 });
  if (up.exitCode !== 0) throw new Error(describeResult('client-up', up));
}

export async function bringDown(vm: ScaleInVm): Promise<void> {
  await stopDaemon(vm).catch(() => undefined);
  await stopLabSssd(vm.client).catch(() => undefined);
  await clientExec(
    vm.client,
    ['adcli', 'delete-computer', `--domain=${labEnv().DOMAIN}`, `--login-user=${labEnv().JOIN_USER}`, '--stdin-password', vm.computer],
    {
      input: `${readLabSecret('join-password')}\n`,
    },
  ).catch(() => undefined);
  await lab(['client-down', vm.client]).catch(() => undefined);
}

/** Join, sssd, the DNS record, the stand-in mount, handles, config and state: a VM that provisioned. */
export async function prepare(vm: ScaleInVm, tag: string): Promise<{ ownHandles: string[]; otherHandles: string[] }> {
  const env = labEnv();
  await stopLabSssd(vm.client);
  await must(
    'adcli join',
    clientExec(
      vm.client,
      [
        'adcli',
        'join',
        `--domain=${env.DOMAIN}`,
        `--login-user=${env.JOIN_USER}`,
        '--stdin-password',
        `--computer-name=${vm.computer}`,
        `--host-fqdn=${fqdnOf(vm)}`,
        `--domain-ou=${env.JOIN_OU}`,
      ],
      { input: `${readLabSecret('join-password')}\n` },
    ),
  );
  const sssd = await startLabSssd(vm.client, fqdnOf(vm));
  if (sssd.exitCode !== 0) throw new Error(describeResult('sssd', sssd));
  // The previous case's clean-up left this name's DNS node tombstoned, owned
  // by the deleted computer account: Samba refuses the new account's update
  // of it (SERVFAIL). AD scavenges such tombstones after days; the lab
  // removes it now, as a VM taking over a name after that time would find.
  const node = `DC=${fqdnOf(vm).split('.')[0]},DC=${env.DOMAIN},CN=MicrosoftDNS,DC=DomainDnsZones,${env.BASE_DN}`;
  const sam = `${env.LAB_DIR}/dc/samba/private/sam.ldb`;
  if ((await dcDnsRecord(fqdnOf(vm).split('.')[0]!)).node) {
    const del = await dcExec(['ldbdel', '-H', sam, node]);
    if (del.exitCode !== 0) throw new Error(describeResult('ldbdel the old DNS node', del));
  }
  // sssd's dyndns update, done by hand (startLabSssd turns it off): the same signed update as the machine.
  // Samba's internal DNS applies it but signs its reply in a way nsupdate
  // rejects ("tsig verify failure", exit 2). Only then, the DC itself must
  // answer with the new address, or the step fails.
  await must(
    'nsupdate -g (register)',
    sh(
      vm,
      `export KRB5CCNAME=FILE:/run/dsvm-lab-dns.cc
kinit -k -t /etc/krb5.keytab '${vm.computer}$@${env.REALM}'
rc=0; out=$(nsupdate -g 2>&1) || rc=$?
kdestroy
if ((rc != 0)); then
  printf '%s\n' "$out" >&2
  grep -qi 'tsig verify failure' <<<"$out" || exit "$rc"
  [[ $(dig +short @${env.DC_IP} ${fqdnOf(vm)} A) == '${vm.ip}' ]] || { echo "the DC has no A ${vm.ip} for ${fqdnOf(vm)}" >&2; exit "$rc"; }
fi`,
      {
        input: `server ${env.DC_HOSTNAME}\nrealm ${env.REALM}\nzone ${env.DOMAIN}\nupdate delete ${fqdnOf(vm)}. A\nupdate add ${fqdnOf(vm)}. 3600 A ${vm.ip}\nsend\n`,
      },
    ),
  );
  const share = `//${env.FILES_HOST}/${env.SHARE_NAME}`;
  await must(
    'stand-in mount',
    sh(vm, `mkdir -p ${MOUNT_POINT}; mountpoint -q ${MOUNT_POINT} || mount -t tmpfs -o size=1m ${share} ${MOUNT_POINT}`),
  );
  // Handles on real folders of the share: the Files fake checks the path exists.
  const dir = `scale-in-${tag}`;
  mkdirSync(path.join(env.SHARE_DIR, dir), { recursive: true });
  writeFileSync(path.join(env.SHARE_DIR, dir, 'own.ipynb'), '{}');
  writeFileSync(path.join(env.SHARE_DIR, dir, 'other.ipynb'), '{}');
  const own = [`${tag}-own-1`, `${tag}-own-2`];
  const other = [`${tag}-other-vm`, `${tag}-same-nat-other-name`];
  const h = (handleId: string, file: string, clientIp: string, clientName: string) => ({
    account: env.STORAGE_ACCOUNT,
    share: env.SHARE_NAME,
    path: `${dir}/${file}`,
    handleId,
    clientIp,
    clientName,
  });
  await control(vm, '/reset', {});
  await control(vm, '/seed', {
    handles: [
      h(own[0]!, 'own.ipynb', `${vm.ip}:49152`, vm.hostname),
      h(own[1]!, '', `${vm.ip}:49153`, vm.hostname),
      h(other[0]!, 'other.ipynb', '10.77.0.99:49152', 'dsvmpool-other'),
      // Same address (VMs behind one NAT), another VM's name: not ours.
      h(other[1]!, 'other.ipynb', `${vm.ip}:49160`, 'dsvmpool-nat-peer'),
    ].map((x) => (x.path.endsWith('/') ? { ...x, path: dir } : x)),
  });
  const urls = fakesUrls(vm.client);
  const config = [
    `azure: { imdsEndpoint: "${urls.imds}", imdsAccess: { restrict: false } }`,
    `domain: { name: ${env.DOMAIN}, joinUser: ${env.JOIN_USER}, joinPassword: { file: /etc/dsvm-agent/join-password }, computerOu: "${env.JOIN_OU}" }`,
    'share:',
    `  account: ${env.STORAGE_ACCOUNT}`,
    `  name: ${env.SHARE_NAME}`,
    `  endpointSuffix: ${env.ENDPOINT_SUFFIX}`,
    `  filesEndpoint: ${urls.files}/${env.STORAGE_ACCOUNT}`,
    `  mountPoint: ${MOUNT_POINT}`,
    '  key: { file: /etc/dsvm-agent/storage-key }',
    'health: { listen: 127.0.0.1:8642, unhealthyOn: [sssd] }',
    'repair: { enabled: false }',
    'scheduledEvents: { pollSec: 1 }',
  ].join('\n');
  const state = JSON.stringify({
    version: 1,
    vmId: (env[`CLIENT_VMID_${vm.client.toUpperCase()}`] ?? '').toLowerCase(),
    vmIdSource: 'imds',
    firstBootStartedAt: new Date(Date.now() - 60_000).toISOString(),
    firstBootCompletedAt: new Date().toISOString(),
    firstBootDurationMs: 42_000,
    tasks: {},
    facts: { computerName: vm.computer },
  });
  await must(
    'config, secrets, state',
    sh(
      vm,
      `mkdir -p /etc/dsvm-agent /var/lib/dsvm-agent; umask 077
read -r join; read -r key; printf '%s\\n' "$join" >/etc/dsvm-agent/join-password; printf '%s\\n' "$key" >/etc/dsvm-agent/storage-key
cat >${CONFIG}
printf '%s\\n' '${state}' >/var/lib/dsvm-agent/state.json
rm -f ${JOURNAL} ${DAEMON_LOG}`,
      { input: `${readLabSecret('join-password')}\n${readLabSecret('storage-key')}\n${config}\n` },
    ),
  );
  return { ownHandles: own, otherHandles: other };
}

let daemon: ChildProcess | undefined;

/** The daemon in the client, its log appended to DAEMON_LOG; resolves once /health answers. */
export async function startDaemon(vm: ScaleInVm): Promise<void> {
  daemon = spawn(
    LAB_SCRIPT,
    ['exec', vm.client, '--', 'bash', '-c', `echo $$ >${PID_FILE}; exec ${AGENT} --config ${CONFIG} run 2>>${DAEMON_LOG}`],
    {
      cwd: PROJECT_ROOT,
      stdio: 'ignore',
    },
  );
  for (let i = 0; i < 100; i++) {
    const up = await clientExec(vm.client, [
      'node',
      '-e',
      "fetch('http://127.0.0.1:8642/health').then(() => process.exit(0), () => process.exit(1))",
    ]);
    if (up.exitCode === 0) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the daemon did not serve /health within 20 s:\n${await daemonLog(vm)}`);
}

/** SIGTERM (a stop) or SIGKILL (a crash); waits for the exit. */
export async function stopDaemon(vm: ScaleInVm, signal: 'TERM' | 'KILL' = 'TERM'): Promise<void> {
  const d = daemon;
  if (!d) return;
  daemon = undefined;
  const exited = d.exitCode !== null ? Promise.resolve() : new Promise<void>((res) => d.once('close', () => res()));
  await sh(vm, `kill -${signal} "$(cat ${PID_FILE})" 2>/dev/null || true`);
  await exited;
}

export async function daemonLog(vm: ScaleInVm): Promise<string> {
  return (await clientExec(vm.client, ['cat', DAEMON_LOG])).stdout;
}

/** Posts a Terminate or Preempt for this VM (NotBefore now + noticeSec) through the control API; returns when (ms) it was posted. */
export async function postEvent(
  vm: ScaleInVm,
  eventId: string,
  type: 'Terminate' | 'Preempt',
  noticeSec: number,
  resources?: string[],
): Promise<number> {
  const env = labEnv();
  const name = `${env.VMSS_NAME}_${env[`CLIENT_INSTANCE_${vm.client.toUpperCase()}`] ?? ''}`;
  const posted = Date.now();
  await control(vm, '/seed', {
    scheduledEvents: [
      {
        EventId: eventId,
        EventType: type,
        ResourceType: 'VirtualMachine',
        Resources: resources ?? [name],
        EventStatus: 'Scheduled',
        NotBefore: new Date(posted + noticeSec * 1000).toUTCString(),
        EventSource: type === 'Preempt' ? 'Platform' : 'User',
      },
    ],
  });
  return posted;
}

export interface Approval {
  EventId: string;
  time: string;
}

export async function approvals(vm: ScaleInVm): Promise<Approval[]> {
  return ((await control<{ approvals: Approval[] }>(vm, '/state')).approvals ?? []) as Approval[];
}

/** Polls the fake until `eventId` is approved; returns the approval's time (ms), or -1 after limitMs. */
export async function waitApproval(vm: ScaleInVm, eventId: string, limitMs: number): Promise<number> {
  const url = new URL('/state', fakesUrls(vm.client).control).toString();
  return inClient<number>(
    vm,
    `const t0 = Date.now(); for (;;) { const s = await (await fetch(${JSON.stringify(url)})).json(); const a = s.approvals.find((x) => x.EventId === ${JSON.stringify(eventId)}); if (a) { console.log(Date.parse(a.time)); break; } if (Date.now() - t0 > ${limitMs}) { console.log(-1); break; } await new Promise((r) => setTimeout(r, 50)); }`,
    limitMs + 10_000,
  );
}

/** The computer object on the DC, read from its own sam.ldb (no password anywhere). */
export async function dcComputer(computer: string): Promise<string[]> {
  const r = await dcExec([
    'ldbsearch',
    '-H',
    `${labEnv().LAB_DIR}/dc/samba/private/sam.ldb`,
    `(&(objectClass=computer)(sAMAccountName=${computer}$))`,
    'dn',
  ]);
  if (r.exitCode !== 0) throw new Error(describeResult('ldbsearch computer', r));
  return r.stdout.split('\n').filter((l) => l.startsWith('dn: '));
}

/** The DNS node of `host` in the domain zone: its live A records (a deleted record stays as a tombstone). */
export async function dcDnsRecord(host: string): Promise<{ node: boolean; tombstoned: boolean; dig: string }> {
  const env = labEnv();
  const base = `DC=${env.DOMAIN},CN=MicrosoftDNS,DC=DomainDnsZones,${env.BASE_DN}`;
  const r = await dcExec([
    'ldbsearch',
    '-H',
    `${env.LAB_DIR}/dc/samba/private/sam.ldb`,
    '-b',
    base,
    `(&(objectClass=dnsNode)(name=${host}))`,
    'dNSTombstoned',
  ]);
  if (r.exitCode !== 0) throw new Error(describeResult('ldbsearch dnsNode', r));
  const dig = await dcExec(['dig', '+short', '+time=2', '+tries=1', `@${env.DC_IP}`, 'A', `${host}.${env.DOMAIN}`]);
  return { node: /^dn: /m.test(r.stdout), tombstoned: /^dNSTombstoned: TRUE/m.test(r.stdout), dig: dig.stdout.trim() };
}

export async function isMounted(vm: ScaleInVm): Promise<boolean> {
  return (await clientExec(vm.client, ['mountpoint', '-q', MOUNT_POINT])).exitCode === 0;
}

export async function openHandleIds(vm: ScaleInVm): Promise<string[]> {
  const s = await control<{ handles: Array<{ handleId: string }> }>(vm, '/state');
  return s.handles.map((h) => h.handleId).sort();
}

export async function journal(vm: ScaleInVm): Promise<Record<string, { steps: Record<string, string>; approvedAt?: string }>> {
  const r = await clientExec(vm.client, ['cat', JOURNAL]);
  if (r.exitCode !== 0) return {};
  return (JSON.parse(r.stdout) as { events: Record<string, { steps: Record<string, string>; approvedAt?: string }> }).events;
}
