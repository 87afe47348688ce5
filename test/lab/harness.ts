/**
 * What lab tests use to reach the lab that `test/lab/run-tests` (or
 * `test/lab/lab up`) brought up: its facts, its secrets and a way to run
 * commands inside the client VM, the DC and the storage server.
 *
 * Every command goes through `test/lab/lab`, so the namespaces and the
 * environment a test sees are exactly what a person gets with `lab exec`.
 * Secrets travel on stdin (`input`), never in argv.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const LAB_DIR = '/run/dsvm-lab';
export const LAB_ENV_FILE = path.join(LAB_DIR, 'lab.env');
/** The lab's command-line tool. */
export const LAB_SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'lab');
/** The project checkout; it is visible at the same path inside the client VM. */
export const PROJECT_ROOT = path.resolve(path.dirname(LAB_SCRIPT), '..', '..');

export interface ExecOptions {
  /** Written to the command's stdin (then closed). The way to pass secrets. */
  input?: string;
  /** SIGKILL the command after this long; default 120 s. */
  timeoutMs?: number;
  /** Extra environment for the command inside the client VM (`lab exec -e`). */
  env?: Record<string, string>;
}

export interface ExecResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** The Azure fakes' addresses inside one client VM (its own loopback). */
export interface FakesUrls {
  imds: string;
  keyVault: string;
  arm: string;
  files: string;
  control: string;
  caFile: string;
}

/** Whether a lab is up on this machine (tests skip themselves when not). */
export function labIsUp(): boolean {
  return process.getuid?.() === 0 && existsSync(LAB_ENV_FILE);
}

/** Why lab tests cannot run here, or undefined when they can. */
export function labSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'lab tests need root: run `make lab-test`';
  if (!existsSync(LAB_ENV_FILE)) return `no lab is up (${LAB_ENV_FILE} missing): run \`make lab-test\``;
  return undefined;
}

/**
 * The lab's facts from `/run/dsvm-lab/lab.env`. Lists (LAB_USERS, CLIENTS)
 * are comma-separated. Per-client keys end in the client's short name in
 * upper case: CLIENT_IP_C1, CLIENT_HOSTNAME_C1, CLIENT_VMID_C1,
 * CLIENT_INSTANCE_C1, CLIENT_NS_C1, CLIENT_PID_C1, FAKES_URLS_C1, FAKES_CA_C1.
 */
export interface LabEnv {
  LAB_DIR: string;
  DOMAIN: string;
  REALM: string;
  NETBIOS: string;
  BASE_DN: string;
  DC_IP: string;
  DC_HOSTNAME: string;
  FILES_IP: string;
  FILES_HOST: string;
  ENDPOINT_SUFFIX: string;
  STORAGE_ACCOUNT: string;
  SHARE_NAME: string;
  SHARE_DIR: string;
  JOIN_USER: string;
  JOIN_OU: string;
  USERS_GROUP: string;
  ADMINS_GROUP: string;
  LAB_USERS: string;
  KEYVAULT_SECRET_NAME: string;
  VMSS_NAME: string;
  SUBSCRIPTION_ID: string;
  RESOURCE_GROUP: string;
  CLIENTS: string;
  [key: string]: string | undefined;
}

const REQUIRED_FACTS = [
  'LAB_DIR',
  'DOMAIN',
  'REALM',
  'NETBIOS',
  'BASE_DN',
  'DC_IP',
  'DC_HOSTNAME',
  'FILES_IP',
  'FILES_HOST',
  'ENDPOINT_SUFFIX',
  'STORAGE_ACCOUNT',
  'SHARE_NAME',
  'SHARE_DIR',
  'JOIN_USER',
  'JOIN_OU',
  'USERS_GROUP',
  'ADMINS_GROUP',
  'LAB_USERS',
  'KEYVAULT_SECRET_NAME',
  'VMSS_NAME',
  'SUBSCRIPTION_ID',
  'RESOURCE_GROUP',
  'CLIENTS',
] as const;

/** The lab's facts; throws naming any fact a complete lab must have. */
export function labEnv(): LabEnv {
  const facts: Record<string, string> = {};
  for (const line of readFileSync(LAB_ENV_FILE, 'utf8').split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) facts[line.slice(0, eq)] = line.slice(eq + 1);
  }
  const missing = REQUIRED_FACTS.filter((key) => facts[key] === undefined);
  if (missing.length) throw new Error(`${LAB_ENV_FILE} lacks ${missing.join(', ')}: is the lab fully up?`);
  return facts as LabEnv;
}

/** One fact, or a clear error naming the missing key. */
export function labFact(key: string): string {
  const value = labEnv()[key];
  if (value === undefined || value === '') throw new Error(`lab fact ${key} is not in ${LAB_ENV_FILE}`);
  return value;
}

/**
 * A lab secret by file name: `admin-password`, `join-password`,
 * `storage-key`, `passwords/alice`, ...
 */
export function readLabSecret(name: string): string {
  if (name.split('/').some((part) => part === '..' || part === '')) throw new Error(`bad lab secret name "${name}"`);
  return readFileSync(path.join(LAB_DIR, name), 'utf8').trim();
}

/** The fakes' URLs and CA file for a client (default c1). */
export function fakesUrls(client = 'c1'): FakesUrls {
  const file = labEnv()[`FAKES_URLS_${client.replace(/^dsvmlab-/, '').toUpperCase()}`];
  if (!file) throw new Error(`client ${client} has no Azure fakes (test/fakes/serve.ts missing when the lab came up?)`);
  return JSON.parse(readFileSync(file, 'utf8')) as FakesUrls;
}

/** Runs `test/lab/lab ARGS...`; a non-zero exit comes back as data. */
export function lab(args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return run(LAB_SCRIPT, args, opts);
}

/** Runs argv as root inside a client VM (net, mount and UTS namespaces). */
export function clientExec(client: string, argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const envFlags = Object.entries(opts.env ?? {}).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
  return lab(['exec', client, ...envFlags, '--', ...argv], opts);
}

/** Runs argv inside the domain controller's namespaces (samba-tool, ldbsearch...). */
export function dcExec(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return lab(['dc-exec', '--', ...argv], opts);
}

/** Runs argv inside the storage server's namespaces. */
export function filesExec(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return lab(['files-exec', '--', ...argv], opts);
}

function run(file: string, args: string[], opts: ExecOptions): Promise<ExecResult> {
  const timeoutMs = opts.timeoutMs ?? 120_000;
  return new Promise((resolve, reject) => {
    // Own process group: a timeout kills the command and whatever it started.
    const child = spawn(file, args, { cwd: PROJECT_ROOT, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (exitCode, signal) => {
      clearTimeout(timer);
      resolve({
        exitCode,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        timedOut,
      });
    });
    // A command that exits without reading its stdin is not an error here.
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

/** Formats a failed command for an assertion message (no secrets are in argv). */
export function describeResult(what: string, r: ExecResult): string {
  const status = r.timedOut ? 'timed out' : r.signal ? `signal ${r.signal}` : `exit ${r.exitCode}`;
  return `${what}: ${status}\n--- stdout\n${r.stdout.trim()}\n--- stderr\n${r.stderr.trim()}`;
}
