/**
 * A client VM of the lab for one fault scenario: brought up outside any scale
 * set (its own host name gives its computer name, so it never competes with
 * c1 or the scale-out VMs), configured as a VM is (join password in a
 * root-only file, optionally the lab's share), provisioned with the real
 * agent, and removed again: computer account, then the namespaces.
 */
import t from 'tap';
import {
  clientExec,
  describeResult,
  fakesUrls,
  lab,
  labEnv,
  labSkipReason,
  PROJECT_ROOT,
  readLabSecret,
  type ExecResult,
} from '../lab/harness.js';

export const AGENT = `${PROJECT_ROOT}/bin/dsvm-agent`;
export const CONFIG = '/etc/dsvm-agent/config.yaml';
export const STATE = '/var/lib/dsvm-agent/state.json';

export interface FaultVm {
  client: string;
  ip: string;
  hostname: string;
}

/** The outcome `provision --json` prints. */
export interface ProvisionOut {
  ok: boolean;
  tasks: Array<{ id: string; status: string; changed?: boolean; attempts?: number; error?: string; fix?: string; kind?: string }>;
}

export const sh = (vm: FaultVm, script: string, opts: { input?: string; timeoutMs?: number; env?: Record<string, string> } = {}) =>
  clientExec(vm.client, ['bash', '-c', `set -euo pipefail\n${script}`], opts);

export async function must(what: string, p: Promise<ExecResult>): Promise<string> {
  const r = await p;
  if (r.exitCode !== 0) throw new Error(describeResult(what, r));
  return r.stdout;
}

/** The agent's config for this VM; `share` adds the lab's storage account (its key from a root-only file). */
export function configYaml(vm: FaultVm, opts: { share?: boolean; extra?: string[] } = {}): string {
  const env = labEnv();
  const urls = fakesUrls(vm.client);
  return [
    `azure: { imdsEndpoint: "${urls.imds}", managementEndpoint: "${urls.arm}", imdsAccess: { restrict: false } }`,
    `domain: { name: ${env.DOMAIN}, joinUser: ${env.JOIN_USER}, joinPassword: { file: /etc/dsvm-agent/join-password }, computerOu: "${env.JOIN_OU}", allowGroups: [${env.USERS_GROUP}] }`,
    ...(opts.share
      ? [
          `share: { account: ${env.STORAGE_ACCOUNT}, name: ${env.SHARE_NAME}, endpointSuffix: ${env.ENDPOINT_SUFFIX}, filesEndpoint: "${urls.files}/${env.STORAGE_ACCOUNT}", mountPoint: /data/workspace, key: { file: /etc/dsvm-agent/storage-key } }`,
        ]
      : []),
    ...(opts.extra ?? []),
    '',
  ].join('\n');
}

/** client-up, IMDS presenting a plain VM, the secrets and the config written. */
export async function bringUp(vm: FaultVm, opts: { share?: boolean; extra?: string[] } = {}): Promise<void> {
  const up = await lab(['client-up', vm.client, vm.ip, vm.hostname], { timeoutMs: 300_000 });
  if (up.exitCode !== 0) throw new Error(describeResult(`client-up ${vm.client}`, up));
  await must(
    `seed IMDS of ${vm.client}`,
    clientExec(vm.client, [
      'node',
      '-e',
      `fetch(process.argv[1] + '/seed', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ vm: { compute: { name: '${vm.hostname}', vmScaleSetName: '' } } }) }).then((r) => process.exit(r.ok ? 0 : 1))`,
      fakesUrls(vm.client).control,
    ]),
  );
  await writeConfig(vm, opts);
}

export async function writeConfig(vm: FaultVm, opts: { share?: boolean; extra?: string[] } = {}): Promise<void> {
  await must(
    `config of ${vm.client}`,
    sh(
      vm,
      `mkdir -p /etc/dsvm-agent; umask 077; read -r p; printf '%s\\n' "$p" >/etc/dsvm-agent/join-password; read -r k; printf '%s\\n' "$k" >/etc/dsvm-agent/storage-key; cat >${CONFIG}`,
      { input: `${readLabSecret('join-password')}\n${readLabSecret('storage-key')}\n${configYaml(vm, opts)}` },
    ),
  );
}

/** `provision --json` in the VM; the outcome parsed (undefined when it printed none: it died). */
export async function provision(vm: FaultVm, timeoutMs = 300_000): Promise<{ r: ExecResult; out: ProvisionOut | undefined; ms: number }> {
  const t0 = Date.now();
  const r = await clientExec(vm.client, [AGENT, '--config', CONFIG, 'provision', '--json'], { timeoutMs });
  let out: ProvisionOut | undefined;
  try {
    out = JSON.parse(r.stdout) as ProvisionOut;
  } catch {
    out = undefined;
  }
  return { r, out, ms: Date.now() - t0 };
}

/** The computer account away (whatever name the keytab holds), then the VM. Never throws. */
export async function bringDown(vm: FaultVm): Promise<void> {
  await clientExec(vm.client, [AGENT, '--config', CONFIG, 'deprovision', '--leave-domain', '--yes'], { timeoutMs: 120_000 }).catch(
    () => undefined,
  );
  await lab(['client-down', vm.client], { timeoutMs: 120_000 }).catch(() => undefined);
}

/**
 * The frame of one fault scenario file: without a lab the file is skipped,
 * with the reason; otherwise `body` registers the file's tests and its own
 * clean-up steps (undo the fault, stop the daemon), which run at the end in
 * the order given, a failing one not stopping the next, and then the VM is
 * brought down.
 */
export function faultFile(vm: FaultVm, body: (cleanup: (step: () => Promise<unknown>) => void) => void): void {
  const skip = labSkipReason();
  if (skip) {
    t.plan(0, skip);
    return;
  }
  const steps: Array<() => Promise<unknown>> = [];
  t.teardown(async () => {
    for (const step of steps) await step().catch(() => undefined);
    await bringDown(vm);
  });
  body((step) => steps.push(step));
}

/** "1234 ms" → "1.2 s" for rows. */
export const seconds = (ms: number): number => Math.round(ms / 100) / 10;
