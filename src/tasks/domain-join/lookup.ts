/**
 * Who holds a computer name: the KDC's quick answer, then the join account's
 * LDAP look-up (adcli show-computer, or adcli-compat.ts's search for an adcli
 * without it), with the join secret both need.
 */
import { permanent } from '../../agent/errors.js';
import type { TaskContext } from '../../agent/task.js';
import { recentDomainController } from '../preflight/index.js';
import { existingFromShow, isNoSuchComputer, parseAdcliError, parseShowComputer, showComputerArgv } from './adcli.js';
import { detectAdcli, lookupComputerOverLdap, type AdcliFeatures } from './adcli-compat.js';
import type { ExistingComputer } from './computer-name.js';
import { kdcSaysNoAccount } from './kdc-probe.js';

/** adcli runs talk to the DC; one that hangs is ended (SIGKILL). */
export const ADCLI_TIMEOUT_MS = 90_000;

/** The join password (user join) or one-time password (pre-staged account), from its secret reference. */
export async function joinSecret(ctx: TaskContext): Promise<{ kind: 'user' | 'computer'; password: string; user?: string }> {
  const d = ctx.cfg.domain;
  if (d.oneTimePassword) return { kind: 'computer', password: await ctx.secret(d.oneTimePassword, 'domain.oneTimePassword') };
  if (!d.joinPassword || !d.joinUser)
    throw permanent('domain.joinUser/joinPassword are not set', { reason: 'join-credentials-missing', fix: 'add them to the config' });
  return { kind: 'user', password: await ctx.secret(d.joinPassword, 'domain.joinPassword'), user: d.joinUser };
}

/** What this machine's adcli can do, asked at most once per check (plan) and passed along explicitly. */
export type AdcliAsk = () => Promise<AdcliFeatures>;

export function askAdcliOnce(ctx: TaskContext): AdcliAsk {
  let answer: Promise<AdcliFeatures> | undefined;
  return () => (answer ??= detectAdcli(ctx));
}

/**
 * The DC the LDAP fallback talks to: this run's preflight's, else the one
 * the last preflight recorded (a daemon repair long after first boot).
 */
export function directoryDc(ctx: TaskContext, features: AdcliFeatures, what: string): string {
  const dc = ctx.state.facts.domainController?.host;
  if (dc) return dc;
  throw permanent(`${what}: adcli ${features.label} cannot do it and no domain controller is known for the LDAP fallback`, {
    reason: 'adcli-too-old',
    fix: 'run `dsvm-agent provision` (its preflight finds a DC), or install adcli 0.9.1 or newer',
  });
}

/**
 * The existing computer object called `name`, or undefined. The KDC is asked
 * first (no credentials, one round trip): when it knows no such account the
 * name is free; otherwise the join account reads the object (read-only LDAP):
 * `adcli show-computer`, or an LDAP search where adcli has no show-computer
 * (0.9.0, see adcli-compat.ts).
 */
export async function lookupComputer(ctx: TaskContext, name: string, adcli: AdcliAsk): Promise<ExistingComputer | undefined> {
  if (ctx.cfg.domain.oneTimePassword) return undefined;
  const dc = recentDomainController(ctx);
  if (dc && (await kdcSaysNoAccount(ctx, name, dc))) return undefined;
  const secret = await joinSecret(ctx);
  if (secret.kind !== 'user') return undefined;
  const domain = ctx.cfg.domain.name.toLowerCase();
  const features = await adcli();
  if (!features.showComputer) {
    const login = {
      realm: domain.toUpperCase(),
      dc: directoryDc(ctx, features, `name check of ${name}`),
      user: secret.user!,
      password: secret.password,
    };
    return lookupComputerOverLdap(ctx, login, name);
  }
  const r = await ctx.run({
    file: 'adcli',
    args: showComputerArgv(domain, domain.toUpperCase(), secret.user!, name, dc),
    input: secret.password,
    timeoutMs: ADCLI_TIMEOUT_MS,
  });
  if (r.exitCode === 0) return existingFromShow(parseShowComputer(r.stdout));
  if (isNoSuchComputer(r)) return undefined;
  throw parseAdcliError('show-computer', r, { user: secret.user! });
}
