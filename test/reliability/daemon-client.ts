/**
 * The daemon (`dsvm-agent run`) in a fault scenario's client VM, and the
 * reads a scenario makes of it from inside the VM (its loopback): /health,
 * polling until a condition holds.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { clientExec, LAB_SCRIPT, PROJECT_ROOT } from '../lab/harness.js';
import { AGENT, CONFIG, sh, type FaultVm } from './fault-client.js';

export const HEALTH_URL = 'http://127.0.0.1:8642/health';

/** Config lines for a daemon whose checks run every 2 s (domain-trust every 10 s). */
export const fastChecks = (o: { repair?: boolean } = {}): string[] => [
  'health:',
  '  listen: 127.0.0.1:8642',
  '  unhealthyOn: [domain-trust, identity-lookup, sssd]',
  '  checks:',
  "    sssd: { schedule: '*/2 * * * * *' }",
  "    identity-lookup: { schedule: '*/2 * * * * *' }",
  "    domain-trust: { schedule: '*/10 * * * * *' }",
  "    clock: { schedule: '*/5 * * * * *' }",
  `repair: { enabled: ${o.repair ?? false}, maxAttempts: 3, windowSec: 600, failuresBeforeRepair: 3, jitterSec: 0 }`,
];

/** Runs a node snippet inside the VM. */
export const nodeIn = (vm: FaultVm, code: string, timeoutMs = 60_000) =>
  clientExec(vm.client, ['node', '--input-type=module', '-e', code], { timeoutMs });

export async function health(vm: FaultVm): Promise<Record<string, unknown>> {
  const r = await nodeIn(vm, `const r = await fetch('${HEALTH_URL}'); process.stdout.write(JSON.stringify(await r.json()));`, 15_000);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

/** Milliseconds until the health body `b` satisfies the JavaScript expression `cond`, or -1 after limitMs. */
export async function waitHealth(vm: FaultVm, cond: string, limitMs: number): Promise<number> {
  const r = await nodeIn(
    vm,
    `const t0 = Date.now(); for (;;) { try { const b = await (await fetch('${HEALTH_URL}')).json(); if (${cond}) { console.log(Date.now() - t0); break; } } catch {} if (Date.now() - t0 > ${limitMs}) { console.log(-1); break; } await new Promise((r) => setTimeout(r, 200)); }`,
    limitMs + 15_000,
  );
  return Number(r.stdout.trim());
}

export const checkIs = (id: string, state: string): string =>
  `b.checks.some((c) => c.id === ${JSON.stringify(id)} && c.state === ${JSON.stringify(state)})`;

/** The daemon in the VM, its pid in /run/dsvm-fault-daemon.pid; resolves once /health answers. */
export class VmDaemon {
  private child: ChildProcess | undefined;
  stderr = '';
  constructor(
    private readonly vm: FaultVm,
    private readonly pidFile = '/run/dsvm-fault-daemon.pid',
  ) {}

  async start(env: string[] = []): Promise<void> {
    this.child = spawn(
      LAB_SCRIPT,
      [
        'exec',
        this.vm.client,
        ...env.flatMap((e) => ['-e', e]),
        '--',
        'bash',
        '-c',
        `echo $$ >${this.pidFile}; exec ${AGENT} --config ${CONFIG} run`,
      ],
      { cwd: PROJECT_ROOT, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    this.child.stderr?.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-20_000);
    });
    for (let i = 0; i < 150; i++) {
      const up = await nodeIn(this.vm, `try { await fetch('${HEALTH_URL}'); console.log('up'); } catch { console.log('down'); }`, 10_000);
      if (up.stdout.trim() === 'up') return;
      if (this.child.exitCode !== null) throw new Error(`the daemon exited ${this.child.exitCode}: ${this.stderr.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`the daemon did not serve /health within 30 s: ${this.stderr.slice(-2000)}`);
  }

  /** Whether the daemon process still runs (by its pid, inside the VM). */
  async alive(): Promise<boolean> {
    const r = await sh(this.vm, `kill -0 "$(cat ${this.pidFile})"`);
    return r.exitCode === 0;
  }

  async signal(sig: string): Promise<void> {
    await sh(this.vm, `kill -${sig} "$(cat ${this.pidFile})"`);
  }

  /** SIGTERM; resolves with the ms it took to exit (or -1 when it did not within 10 s). */
  async stop(): Promise<number> {
    const c = this.child;
    if (!c || c.exitCode !== null) return 0;
    this.child = undefined;
    const exited = new Promise<void>((res) => c.once('close', () => res()));
    const t0 = Date.now();
    await this.signal('TERM').catch(() => undefined);
    const done = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 10_000))]);
    if (!done) await this.signal('KILL').catch(() => undefined);
    return done ? Date.now() - t0 : -1;
  }
}
