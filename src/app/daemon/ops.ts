import { Resolver } from 'node:dns/promises';
import * as domainJoin from '../../tasks/domain-join/index.js';
import * as preflight from '../../tasks/preflight/index.js';
import * as ldapTime from '../../tasks/preflight/ldap-time.js';
import * as shareMount from '../../tasks/share-mount/index.js';
import type { CheckDeps, ShareProbe } from '../../tasks/checks/types.js';
import { firstBootBackoff } from '../../agent/backoff.js';
import { notImplemented, permanent, transient } from '../../agent/errors.js';
import { withLock } from '../../agent/lock.js';
import { summarize } from '../../agent/runner.js';
import { runTasks, type Task, type TaskContext } from '../../agent/task.js';

/**
 * Everything the daemon borrows from the first-boot tasks: checks, repairs
 * and the scale-in cleanup. Built once at start from what the task modules
 * export, so the daemon depends on capability names, not module internals,
 * and tests inject the whole object.
 */
export interface DaemonOps extends CheckDeps {
  remountShare(ctx: TaskContext): Promise<void>;
  rejoin(ctx: TaskContext): Promise<void>;
  restartSssd(ctx: TaskContext): Promise<void>;
  closeHandlesAndUnmount(ctx: TaskContext): Promise<void>;
  leaveDomain(ctx: TaskContext): Promise<void>;
  /** Capabilities served by a fallback or not at all in this build (for the log). */
  readonly fallbacks: string[];
}

type Fn = (...args: never[]) => unknown;
const exported = (ns: object, name: string): Fn | undefined => {
  const v = (ns as Record<string, unknown>)[name];
  return typeof v === 'function' ? (v as Fn) : undefined;
};

/** Re-converge one first-boot task (check, apply what differs, check again), one attempt. */
async function reconverge(task: Task, ctx: TaskContext): Promise<void> {
  const [outcome] = await runTasks([task], ctx, { backoff: { ...firstBootBackoff, maxAttempts: 1 } });
  if (outcome?.status === 'failed') throw outcome.error;
}

/** The first domain controller from DNS SRV, as preflight finds it. */
async function firstDc(domain: string): Promise<string> {
  const resolver = new Resolver({ timeout: 3000, tries: 2 });
  const records = await resolver.resolveSrv(`_ldap._tcp.${domain}`);
  records.sort((a, b) => a.priority - b.priority || b.weight - a.weight);
  const dc = records[0]?.name;
  if (!dc) throw transient(`no _ldap._tcp.${domain} SRV record`, { fix: "check the VM's DNS servers point at the domain's DNS" });
  return dc;
}

/** Build the ops from the task modules, with narrow fallbacks where a capability is not exported. */
export function loadDaemonOps(): DaemonOps {
  const fallbacks: string[] = [];
  const use = <T extends Fn>(ns: object, name: string, fallback: T, label = name): T => {
    const f = exported(ns, name);
    if (f) return f as T;
    fallbacks.push(label);
    return fallback;
  };
  const missing = (what: string) => async (): Promise<never> => {
    throw notImplemented(`${what} is not available in this build`);
  };

  const testJoin = use(domainJoin, 'testJoin', async (ctx: TaskContext) => {
    // adcli testjoin authenticates with the host keytab: read-only, no password.
    const r = await ctx.run({
      file: 'adcli',
      args: ['testjoin', `--domain=${ctx.cfg.domain.name}`, `--host-keytab=${ctx.paths.krb5Keytab}`],
      timeoutMs: 25_000,
    });
    return r.exitCode === 0
      ? { ok: true, reason: `keytab authenticates to ${ctx.cfg.domain.name}` }
      : { ok: false, reason: `adcli testjoin: ${summarize(r)}` };
  });

  const clockOffset = use(
    preflight,
    'clockOffset',
    async (ctx: TaskContext) => {
      const read = exported(ldapTime, 'readDcClockOffset') as ((host: string, o: { timeoutMs: number }) => Promise<number>) | undefined;
      if (!read) throw notImplemented('reading the DC clock is not available in this build');
      const dc = await firstDc(ctx.cfg.domain.name);
      return { offsetMs: await read(dc, { timeoutMs: 5000 }), source: dc };
    },
    'clockOffset (LDAP rootDSE currentTime of the first DC)',
  );

  const probeShare = use(
    shareMount,
    'probeShare',
    missing('the share probe') as unknown as (ctx: TaskContext, o: { timeoutMs: number }) => Promise<ShareProbe>,
  );
  const shareUsage = use(
    shareMount,
    'shareUsage',
    missing('share usage (Files REST)') as unknown as (ctx: TaskContext) => Promise<{ usedBytes: number; quotaBytes: number }>,
  );
  const remountShare = use(
    shareMount,
    'remountShare',
    (ctx: TaskContext) => reconverge(shareMount.shareMountTask, ctx),
    'remountShare (re-run of the share-mount task)',
  );
  const rejoin = use(
    domainJoin,
    'rejoin',
    (ctx: TaskContext) => reconverge(domainJoin.domainJoinTask, ctx),
    'rejoin (re-run of the domain-join task)',
  );
  const closeHandlesAndUnmount = use(
    shareMount,
    'closeHandlesAndUnmount',
    missing('closing share handles and unmounting') as (ctx: TaskContext) => Promise<void>,
  );
  const leaveDomain = use(
    domainJoin,
    'leaveDomain',
    async (ctx: TaskContext) => {
      if (!domainJoin.domainJoinTask.undo) throw notImplemented('leaving the domain is not available in this build');
      await domainJoin.domainJoinTask.undo(ctx, { leaveDomain: true });
    },
    'leaveDomain (domain-join undo)',
  );

  return {
    testJoin: (ctx) => testJoin(ctx) as Promise<{ ok: boolean; reason: string }>,
    probeShare: (ctx, o) => probeShare(ctx, o) as Promise<ShareProbe>,
    shareUsage: (ctx) => shareUsage(ctx) as Promise<{ usedBytes: number; quotaBytes: number }>,
    clockOffset: async (ctx) => normalizeOffset(await (clockOffset(ctx) as Promise<unknown>)),
    // Repairs write fstab, units, sssd and krb5 files like first boot does: under the same lock, never
    // during an admin's `provision` or `deprovision`. Busy means skipped (not ready), and the next failing
    // check tries again; waiting would only queue a repair behind a run that may fix the same thing.
    remountShare: (ctx) => withLock(ctx.paths.lockFile, 'repair remount-share', async () => void (await remountShare(ctx))),
    rejoin: (ctx) => withLock(ctx.paths.lockFile, 'repair rejoin', async () => void (await rejoin(ctx))),
    restartSssd: (ctx) => ctx.services.restart('sssd'),
    closeHandlesAndUnmount: async (ctx) => void (await closeHandlesAndUnmount(ctx)),
    leaveDomain: async (ctx) => void (await leaveDomain(ctx)),
    fallbacks,
  };
}

/** Preflight may answer a number (ms) or an object: accept both shapes. */
function normalizeOffset(v: unknown): { offsetMs: number; source: string } {
  if (typeof v === 'number') return { offsetMs: v, source: 'the domain controller' };
  if (v && typeof v === 'object' && typeof (v as { offsetMs?: unknown }).offsetMs === 'number') {
    const o = v as { offsetMs: number; source?: unknown; dc?: unknown };
    return {
      offsetMs: o.offsetMs,
      source: typeof o.source === 'string' ? o.source : typeof o.dc === 'string' ? o.dc : 'the domain controller',
    };
  }
  throw permanent('clock offset: unexpected answer from preflight');
}
