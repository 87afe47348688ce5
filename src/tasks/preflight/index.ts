import net from 'node:net';
import {
  dnsCode,
  firstDomainController,
  lookupSrv,
  systemResolver,
  systemResolveSrv,
  type ResolveSrv,
  type SrvTarget,
} from '../../agent/dc-locator.js';
import { AgentError, permanent, transient } from '../../agent/errors.js';
import { azureProxy, checkProxyReachable } from '../../agent/azure/proxy.js';
import type { DomainControllerFact } from '../../agent/state.js';
import type { CheckResult, Task, TaskContext } from '../../agent/task.js';
import { readDcClockOffset } from './ldap-time.js';

/**
 * Ports adcli and sssd need on the DC: Kerberos (88), LDAP (389) and kpasswd
 * (464, the machine password set at the join and renewed by sssd). Without
 * any of them no join or login works, so preflight waits for them.
 */
export const DC_PORTS = [88, 389, 464] as const;

/**
 * Ports a DC usually has open that neither the join nor sssd needs here: a
 * locked-down VNet may close them, and names resolve through the VM's own
 * resolver, which may be a forwarder (Azure DNS, a DNS private resolver) and
 * not the DC. Closed, each is a warning naming what would not work.
 */
export const DC_OPTIONAL_PORTS: ReadonlyArray<{ port: number; without: (dnsUpdate: boolean) => string }> = [
  {
    port: 53,
    without: (dnsUpdate) =>
      `DNS on the DC: fine while this VM's resolver answers the domain's records${
        dnsUpdate
          ? ", but sssd cannot register this VM's name (domain.dnsUpdate sends its update to the DC) and scale-in cannot remove it: open TCP/UDP 53 to the DC, or set domain.dnsUpdate: false"
          : ' (domain.dnsUpdate is off, so nothing of the agent needs it)'
      }`,
  },
  {
    port: 445,
    without: () =>
      "SMB on the DC: the agent and sssd's simple access control do not use it, but Group Policy (sssd's ad_gpo_access_control reads SYSVOL), netlogon scripts and Samba's `net ads` tools would not work",
  },
];

/** Kerberos refuses tickets beyond 5 minutes of skew (MIT/AD default clockskew). */
export const MAX_CLOCK_SKEW_MS = 5 * 60_000;
/** Above this, warn: still working, but drifting towards the limit. */
export const WARN_CLOCK_SKEW_MS = 60_000;

export { classifySrvError, orderSrv, type SrvTarget } from '../../agent/dc-locator.js';

/** The network doors preflight uses, injected so tests can replace them without globals. */
export interface PreflightDeps {
  resolveSrv: ResolveSrv;
  resolve4(name: string): Promise<string[]>;
  /** Resolves when the TCP port accepts a connection; rejects with the reason otherwise. */
  probePort(host: string, port: number, timeoutMs: number): Promise<void>;
  /** The DC clock minus ours, in ms. */
  clockOffset(host: string): Promise<number>;
}

export function systemPreflightDeps(): PreflightDeps {
  // One resolver setting for every DC lookup: agent/dc-locator.ts says why.
  return {
    resolveSrv: systemResolveSrv,
    resolve4: (name) => systemResolver().resolve4(name),
    probePort: (host, port, timeoutMs) =>
      new Promise((resolve, reject) => {
        const s = net.connect({ host, port });
        const done = (err?: Error): void => {
          s.destroy();
          if (err) reject(err);
          else resolve();
        };
        s.setTimeout(timeoutMs, () => done(new Error(`timed out after ${timeoutMs} ms`)));
        s.once('connect', () => done());
        s.once('error', (err) => done(err));
      }),
    clockOffset: (host) => readDcClockOffset(host),
  };
}

/** Classify the clock offset: over 5 minutes breaks Kerberos (permanent), over 1 minute is a warning. */
export function classifyClockOffset(dc: string, offsetMs: number): { error?: AgentError; warning?: string } {
  const abs = Math.abs(offsetMs);
  const text = `${(offsetMs / 1000).toFixed(1)} s (${offsetMs > 0 ? 'the DC is ahead' : 'this VM is ahead'})`;
  if (abs > MAX_CLOCK_SKEW_MS) {
    return {
      error: permanent(`clock: this VM's clock differs from the DC ${dc} by ${text}; Kerberos allows at most 5 minutes`, {
        reason: 'clock-skew',
        fix: 'enable time sync (chrony with the Hyper-V PTP clock /dev/ptp_hyperv on Azure, or the DC as NTP server), then `chronyc makestep`',
      }),
    };
  }
  if (abs > WARN_CLOCK_SKEW_MS)
    return { warning: `clock: this VM's clock differs from the DC ${dc} by ${text}; Kerberos fails above 5 minutes: check time sync` };
  return {};
}

/** What preflight learns of the DC it found (the fact it records adds when). */
export type DcFacts = Omit<DomainControllerFact, 'foundAt'>;

/** Find the first DC (in SRV order) that answers on every required port; throws the classified failure otherwise. */
async function findReachableDc(
  targets: SrvTarget[],
  deps: PreflightDeps,
  timeoutMs: number,
  dnsUpdate: boolean,
): Promise<{ host: string; address: string; warnings: string[] }> {
  const problems: string[] = [];
  for (const t of targets) {
    let address: string;
    try {
      const found = await deps.resolve4(t.name);
      if (!found[0]) throw Object.assign(new Error('no address'), { code: 'ENODATA' });
      address = found[0];
    } catch (err) {
      problems.push(`${t.name}: no IPv4 address (${dnsCode(err)})`);
      continue;
    }
    const ports = [...DC_PORTS, ...DC_OPTIONAL_PORTS.map((o) => o.port)];
    const results = await Promise.allSettled(ports.map((p) => deps.probePort(address, p, timeoutMs)));
    const why = (r: PromiseRejectedResult): string => (r.reason as Error)?.message ?? String(r.reason);
    const closed = results.slice(0, DC_PORTS.length).flatMap((r, i) => (r.status === 'rejected' ? [`${DC_PORTS[i]} (${why(r)})`] : []));
    if (closed.length === 0) {
      const warnings = results.slice(DC_PORTS.length).flatMap((r, i) => {
        const o = DC_OPTIONAL_PORTS[i]!;
        return r.status === 'rejected'
          ? [`port ${o.port} on the DC ${t.name} (${address}) is not reachable (${why(r)}): ${o.without(dnsUpdate)}`]
          : [];
      });
      return { host: t.name, address, warnings };
    }
    problems.push(`${t.name} (${address}): port${closed.length > 1 ? 's' : ''} ${closed.join(', ')} not reachable`);
  }
  throw transient(`no domain controller is reachable on every required port: ${problems.join('; ')}`, {
    reason: 'dc-unreachable',
    fix: `allow TCP and UDP ${DC_PORTS.join(', ')} from this subnet to the DCs in the NSG/firewall, and check that the DCs are running`,
  });
}

/** Run every prerequisite check; returns the DC found and warnings, or throws the first classified failure. */
export async function runPreflight(
  ctx: TaskContext,
  deps: PreflightDeps,
  opts: { portTimeoutMs?: number } = {},
): Promise<{ dc: DcFacts; warnings: string[] }> {
  const domain = ctx.cfg.domain.name.toLowerCase();
  const log = ctx.log.child('preflight');
  const warnings: string[] = [];

  // The secret first: it needs no network, and a missing one is a config
  // problem worth reporting even while the DC is still down.
  const secretRef = ctx.cfg.domain.oneTimePassword ?? ctx.cfg.domain.joinPassword;
  const secretKey = ctx.cfg.domain.oneTimePassword ? 'domain.oneTimePassword' : 'domain.joinPassword';
  // A Key Vault secret through a proxy (azure.proxy): a proxy that is down is named as such, not as the vault.
  if (secretRef && 'keyVault' in secretRef)
    await checkProxyReachable(azureProxy(ctx.cfg.azure), [secretRef.keyVault.vaultUrl], deps.probePort, opts.portTimeoutMs ?? 3000);
  if (secretRef) await ctx.secret(secretRef, secretKey);

  const ldapTargets = await lookupSrv(domain, `_ldap._tcp.${domain}`, deps.resolveSrv);
  await lookupSrv(domain, `_kerberos._tcp.${domain}`, deps.resolveSrv);
  log.debug(`SRV _ldap._tcp.${domain}: ${ldapTargets.map((t) => t.name).join(', ')}`);

  const {
    host,
    address,
    warnings: portWarnings,
  } = await findReachableDc(ldapTargets, deps, opts.portTimeoutMs ?? 3000, ctx.cfg.domain.dnsUpdate);
  warnings.push(...portWarnings);

  let offset: number;
  try {
    offset = await deps.clockOffset(address);
  } catch (err) {
    throw transient(`clock: cannot read the time of the DC ${host} (${address}) from its LDAP rootDSE: ${(err as Error).message}`, {
      reason: 'clock-unavailable',
      fix: 'check that anonymous LDAP rootDSE reads on port 389 are allowed (they are by default on AD)',
    });
  }
  const clock = classifyClockOffset(host, offset);
  if (clock.error) throw clock.error;
  if (clock.warning) warnings.push(clock.warning);
  return { dc: { host, address, clockOffsetMs: Math.round(offset) }, warnings };
}

/**
 * The DC preflight found answering on every port, passed to the join in the
 * state's facts (`domainController`, with when it was found). The join talks
 * to that one DC from its name check to the join itself (see
 * domain-join/kdc-probe.ts); a DC found longer ago than `maxAgeMs` (a
 * daemon's repair months after first boot) is not assumed to be there
 * still, and then adcli discovers one as usual.
 */
export function recentDomainController(ctx: TaskContext, maxAgeMs = 10 * 60_000): string | undefined {
  const dc = ctx.state.facts.domainController;
  const foundAt = dc?.foundAt === undefined ? NaN : Date.parse(dc.foundAt);
  return dc && ctx.clock.now() - foundAt <= maxAgeMs ? dc.host : undefined;
}

/**
 * Build the preflight task. It changes nothing: `check` throws the classified
 * error when a prerequisite fails (the engine retries transient ones with
 * backoff) and reports no changes when everything is in place, so `apply`
 * never runs.
 */
export function createPreflightTask(deps: PreflightDeps = systemPreflightDeps()): Task {
  return {
    id: 'preflight',
    description: 'DNS, ports, clock and secrets the join needs',
    async check(ctx): Promise<CheckResult> {
      const { dc, warnings } = await runPreflight(ctx, deps);
      ctx.state.facts.domainController = { ...dc, foundAt: new Date(ctx.clock.now()).toISOString() };
      return { changes: [], warnings, detail: { dc } };
    },
    async apply() {
      // Nothing to change: check never reports changes.
    },
  };
}

/** DNS, ports, clock and secrets the join needs. */
export const preflightTask: Task = createPreflightTask();

/**
 * The clock check's reading: the offset of the first domain controller in
 * preflight's SRV order (orderSrv), read from its LDAP rootDSE. No port
 * probe: the check runs every few minutes, and a DC that does not answer
 * LDAP fails the read anyway.
 */
export async function clockOffset(
  ctx: TaskContext,
  deps: PreflightDeps = systemPreflightDeps(),
): Promise<{ offsetMs: number; source: string }> {
  const dc = await firstDomainController(ctx.cfg.domain.name, deps.resolveSrv);
  return { offsetMs: await deps.clockOffset(dc), source: dc };
}
