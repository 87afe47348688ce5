/**
 * Many lab client VMs booting at once: bring them up (namespaces with
 * overlays and their own Azure fakes, as `lab client-up` makes them), give
 * each the agent's config, run `dsvm-agent provision` in all of them at the
 * same moment, and read what happened: each run's outcome, its retries with
 * their times (stderr lines stamped inside the VM as they are written), the
 * name in its keytab, and the DC's CPU time. Shared by
 * test/reliability/scale-out.test.ts and bench/scale-out.ts.
 */
import { readFileSync } from 'node:fs';
import { PROJECT_ROOT, clientExec, dcExec, describeResult, fakesUrls, lab, labEnv, readLabSecret } from '../lab/harness.js';

export const AGENT = `${PROJECT_ROOT}/bin/dsvm-agent`;
export const CONFIG = '/etc/dsvm-agent/config.yaml';

export interface Vm {
  client: string;
  ip: string;
  hostname: string;
}

/** Client `x<i>` at 10.77.0.<i>: its scale-set instance id is i (the lab takes the digits of the name). */
export const vmNo = (i: number): Vm => ({ client: `x${i}`, ip: `10.77.0.${i}`, hostname: `dsvm-so-${i}` });

export const vmIdOf = (vm: Vm): string => (labEnv()[`CLIENT_VMID_${vm.client.toUpperCase()}`] ?? '').toLowerCase();

/** Runs fn over items, at most `limit` at a time; results in order. */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

async function must(what: string, p: ReturnType<typeof clientExec>): Promise<string> {
  const r = await p;
  if (r.exitCode !== 0) throw new Error(describeResult(what, r));
  return r.stdout;
}

/** `lab client-up` (it takes the lab's own lock, so VMs come up one after the other), then the agent's config. */
export async function bringUp(vm: Vm): Promise<void> {
  const up = await lab(['client-up', vm.client, vm.ip, vm.hostname], { timeoutMs: 300_000 });
  if (up.exitCode !== 0) throw new Error(describeResult(`client-up ${vm.client}`, up));
  await writeConfig(vm);
}

export async function writeConfig(vm: Vm): Promise<void> {
  const env = labEnv();
  const urls = fakesUrls(vm.client);
  const config = [
    `azure: { imdsEndpoint: "${urls.imds}", imdsAccess: { restrict: false } }`,
    `domain: { name: ${env.DOMAIN}, joinUser: ${env.JOIN_USER}, joinPassword: { file: /etc/dsvm-agent/join-password }, computerOu: "${env.JOIN_OU}" }`,
  ].join('\n');
  await must(
    `config of ${vm.client}`,
    clientExec(
      vm.client,
      [
        'bash',
        '-c',
        `set -e; mkdir -p /etc/dsvm-agent; umask 077; read -r p; printf '%s\\n' "$p" >/etc/dsvm-agent/join-password; cat >${CONFIG}`,
      ],
      { input: `${readLabSecret('join-password')}\n${config}\n` },
    ),
  );
}

export async function bringDown(vm: Vm): Promise<void> {
  await lab(['client-down', vm.client], { timeoutMs: 120_000 }).catch(() => undefined);
}

/** Overrides what this VM's IMDS fake says about the VM (merged into its compute document). */
export async function seedCompute(vm: Vm, compute: Record<string, string>): Promise<void> {
  await must(
    `seed IMDS of ${vm.client}`,
    clientExec(vm.client, [
      'node',
      '-e',
      `fetch(process.argv[1] + '/seed', { method: 'POST', headers: { 'content-type': 'application/json' }, body: process.argv[2] }).then((r) => process.exit(r.ok ? 0 : 1))`,
      fakesUrls(vm.client).control,
      JSON.stringify({ vm: { compute } }),
    ]),
  );
}

export interface Retry {
  /** Epoch ms the line was written. */
  at: number;
  task: string;
  attempt: number;
  delaySec: number;
  error: string;
}

export interface Boot {
  vm: Vm;
  startedAt: number;
  endedAt: number;
  exitCode: number | null;
  ok: boolean;
  tasks: Array<{ id: string; status: string; attempts?: number; error?: string }>;
  retries: Retry[];
  /** stderr lines at warn or error level (journald priority 3 or 4). */
  problems: string[];
  stderr: string;
}

// Each stderr line gets the VM's clock (bash's $EPOCHREALTIME, no fork) as it is written; stdout stays the JSON.
const STAMPED = `set -o pipefail; { ${AGENT} --config ${CONFIG} provision --json 2>&1 1>&3 | while IFS= read -r l; do printf '%s %s\\n' "$EPOCHREALTIME" "$l"; done >&2; } 3>&1`;

/** One first boot: `dsvm-agent provision` in the VM, as cloud-init's runcmd runs it. */
export async function boot(vm: Vm, timeoutMs: number): Promise<Boot> {
  const startedAt = Date.now();
  const r = await clientExec(vm.client, ['bash', '-c', STAMPED], { timeoutMs });
  const endedAt = Date.now();
  let parsed: { ok?: boolean; tasks?: Boot['tasks'] } = {};
  try {
    parsed = JSON.parse(r.stdout) as typeof parsed;
  } catch {
    // A run that died prints no JSON: exitCode and stderr tell.
  }
  const retries: Retry[] = [];
  const problems: string[] = [];
  for (const line of r.stderr.split('\n')) {
    const m = /^(\d+)\.(\d+) <([34])>(.*)$/.exec(line);
    if (!m) continue;
    const at = Number(m[1]) * 1000 + Math.floor(Number(`0.${m[2]}`) * 1000);
    problems.push(m[4]!);
    const retry = /^([\w-]+).*?attempt (\d+) failed, retrying in ([\d.]+) s: (.*)$/.exec(m[4]!);
    if (retry) retries.push({ at, task: retry[1]!, attempt: Number(retry[2]), delaySec: Number(retry[3]), error: retry[4]! });
  }
  return {
    vm,
    startedAt,
    endedAt,
    exitCode: r.exitCode,
    ok: r.exitCode === 0 && parsed.ok === true,
    tasks: parsed.tasks ?? [],
    retries,
    problems,
    stderr: r.stderr,
  };
}

/** All at once: every provision is started in the same tick. */
export function bootAll(vms: Vm[], timeoutMs: number): Promise<Boot[]> {
  return Promise.all(vms.map((vm) => boot(vm, timeoutMs)));
}

/** `dsvm-agent deprovision --leave-domain`: the VM as a fresh image (config kept), its computer account gone. */
export async function deprovision(vm: Vm): Promise<void> {
  await must(
    `deprovision ${vm.client}`,
    clientExec(vm.client, [AGENT, '--config', CONFIG, 'deprovision', '--leave-domain', '--yes'], { timeoutMs: 180_000 }),
  );
}

/** The computer name in the VM's keytab, and whether the DC still takes that key (kinit -k). */
export async function keytab(vm: Vm): Promise<{ name?: string; valid: boolean; why: string }> {
  const env = labEnv();
  const k = await clientExec(vm.client, ['klist', '-k', '/etc/krb5.keytab']);
  const name = /^\s*\d+\s+([^\s/]+)\$@/m.exec(k.stdout)?.[1];
  if (!name) return { valid: false, why: `no keytab: ${k.stderr.trim()}` };
  const kinit = await clientExec(vm.client, ['bash', '-c', `KRB5CCNAME=MEMORY:check kinit -k -t /etc/krb5.keytab '${name}$@${env.REALM}'`]);
  return { name, valid: kinit.exitCode === 0, why: kinit.stderr.trim() };
}

/** Computer objects in the pool's OU: name → the vmId stamped in its description (or ""). */
export async function dcComputers(): Promise<Map<string, string>> {
  const env = labEnv();
  const r = await dcExec([
    'ldbsearch',
    '-H',
    `${env.LAB_DIR}/dc/samba/private/sam.ldb`,
    '-b',
    env.JOIN_OU,
    '(objectClass=computer)',
    'sAMAccountName',
    'description',
  ]);
  if (r.exitCode !== 0) throw new Error(describeResult('ldbsearch computers', r));
  const out = new Map<string, string>();
  for (const rec of r.stdout.split(/\n(?=dn: )/)) {
    const name = /^sAMAccountName: (.*?)\$?$/m.exec(rec)?.[1];
    if (name) out.set(name, /dsvm-agent vmId=([0-9a-z-]+)/i.exec(rec)?.[1]?.toLowerCase() ?? '');
  }
  return out;
}

/** Deletes computer objects straight from the DC's database (clean-up only). */
export async function dcDeleteComputers(names: string[]): Promise<void> {
  if (names.length === 0) return;
  const env = labEnv();
  await dcExec(['ldbdel', '-H', `${env.LAB_DIR}/dc/samba/private/sam.ldb`, ...names.map((n) => `CN=${n},${env.JOIN_OU}`)]).catch(
    () => undefined,
  );
}

const CLK_TCK = 100;

/**
 * CPU seconds of every process in the DC's network namespace: user + system,
 * plus what reaped children used (cutime/cstime), so Samba's short-lived
 * workers count once they exit. Read from /proc on the host.
 */
export async function dcCpuSeconds(): Promise<number> {
  const ns = labEnv().DC_NS ?? 'dsvmlab-dc';
  const { execFileSync } = await import('node:child_process');
  const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split('\n').filter(Boolean);
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // Fields 14-17 of stat(5), counted from the state (field 3) at index 0.
      ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    } catch {
      // Exited between the listing and the read: its time moved to its parent's cutime.
    }
  }
  return ticks / CLK_TCK;
}

/** Retries bucketed by `bucketSec` from t0: "+0-5 s  3 ███". */
export function timeline(retries: Retry[], t0: number, bucketSec: number, marks: Record<string, number> = {}): string[] {
  if (retries.length === 0) return ['(no retries)'];
  const last = Math.max(...retries.map((r) => r.at), ...Object.values(marks));
  const lines: string[] = [];
  for (let s = 0; t0 + s * 1000 <= last; s += bucketSec) {
    const n = retries.filter((r) => r.at >= t0 + s * 1000 && r.at < t0 + (s + bucketSec) * 1000).length;
    const here = Object.entries(marks)
      .filter(([, at]) => at >= t0 + s * 1000 && at < t0 + (s + bucketSec) * 1000)
      .map(([m]) => ` <- ${m}`)
      .join('');
    lines.push(`+${String(s).padStart(4)}-${String(s + bucketSec).padEnd(4)} s ${String(n).padStart(3)} ${'#'.repeat(n)}${here}`);
  }
  return lines;
}

/** The most retries that fell in any window of `windowMs` (a storm is many at once). */
export function peakInWindow(retries: Retry[], windowMs: number): number {
  const at = retries.map((r) => r.at).sort((a, b) => a - b);
  let peak = 0;
  for (let i = 0, j = 0; i < at.length; i++) {
    while (at[i]! - at[j]! >= windowMs) j++;
    peak = Math.max(peak, i - j + 1);
  }
  return peak;
}
