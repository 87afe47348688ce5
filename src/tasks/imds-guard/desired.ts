import type { Config } from '../../agent/config-schema.js';
import { permanent } from '../../agent/errors.js';
import { summarize, type Runner } from '../../agent/runner.js';
import type { GuardSpec } from './ruleset.js';

/** Whether the config reads any secret through the managed identity, and which key does. */
export function identitySecretKeys(cfg: Config): string[] {
  const keys: string[] = [];
  const viaIdentity = (ref: object | undefined): boolean => ref !== undefined && ('keyVault' in ref || 'armListKeys' in ref);
  if (viaIdentity(cfg.domain.joinPassword)) keys.push('domain.joinPassword');
  if (viaIdentity(cfg.domain.oneTimePassword)) keys.push('domain.oneTimePassword');
  if (viaIdentity(cfg.share?.key)) keys.push('share.key');
  return keys;
}

/**
 * Whether IMDS is restricted under this config, and why, in the words `plan`
 * and the log print. "auto" follows the agent's own use of the identity (see
 * the imdsAccess schema and docs/security.md for the reasoning).
 */
export function guardWanted(cfg: Config): { on: boolean; why: string } {
  const restrict = cfg.azure.imdsAccess.restrict;
  if (restrict === true) return { on: true, why: 'azure.imdsAccess.restrict is true' };
  if (restrict === false) return { on: false, why: 'azure.imdsAccess.restrict is false' };
  const keys = identitySecretKeys(cfg);
  return keys.length > 0
    ? {
        on: true,
        why: `${keys.join(' and ')} ${keys.length === 1 ? 'is' : 'are'} read through the managed identity (azure.imdsAccess.restrict: auto)`,
      }
    : { on: false, why: 'no secret is read through the managed identity (azure.imdsAccess.restrict: auto)' };
}

/** Address and port of azure.imdsEndpoint (the schema guarantees an IPv4 literal while restricting). */
export function imdsTarget(cfg: Config): { address: string; port: number } {
  const url = new URL(cfg.azure.imdsEndpoint);
  const port = url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
  return { address: url.hostname, port };
}

/**
 * The numeric gids of azure.imdsAccess.allowGroups, resolved through NSS
 * (sssd for domain groups), so the rule matches the group itself and not a
 * look-alike name. A group that does not resolve stops the task: leaving it
 * out would lock its members out silently, and guessing is worse.
 */
export async function resolveGids(cfg: Config, run: Runner): Promise<number[]> {
  const gids = new Set<number>();
  const groups = cfg.azure.imdsAccess.allowGroups;
  for (const [i, g] of groups.entries()) {
    if (typeof g === 'number') {
      gids.add(g);
      continue;
    }
    // getent looks digits up as a gid: "2001" in quotes would name whatever group has gid 2001.
    if (/^\d+$/.test(g)) {
      throw permanent(`azure.imdsAccess.allowGroups[${i}]: "${g}" is a quoted number`, {
        fix: 'write a gid without quotes (2001), or the group name',
        reason: 'imds-group-unknown',
      });
    }
    // "--": a name starting with "-" is a name, not an option. sssd may answer in its own case
    // ("aad dc administrators"): the gid is what counts, not the spelling.
    const r = await run({ file: 'getent', args: ['group', '--', g], timeoutMs: 15_000 });
    const fields = r.exitCode === 0 ? (r.stdout.split('\n')[0] ?? '').split(':') : [];
    const gid = /^\d+$/.test(fields[2] ?? '') ? Number(fields[2]) : NaN;
    if (r.exitCode === 2) {
      throw permanent(`azure.imdsAccess.allowGroups[${i}]: no group "${g}" in NSS (getent group)`, {
        fix: 'check the name (domain groups resolve only after the join, through sssd), or write its numeric gid',
        reason: 'imds-group-unknown',
      });
    }
    if (r.exitCode !== 0 || !Number.isInteger(gid)) {
      throw permanent(`azure.imdsAccess.allowGroups[${i}]: getent group ${g}: ${summarize(r)}`, {
        fix: 'check that sssd answers (`getent group NAME`), then run provision again',
        reason: 'imds-group-lookup',
      });
    }
    gids.add(gid);
  }
  return [...gids].sort((a, b) => a - b);
}

/** The full spec the rule set is rendered from. */
export async function guardSpec(cfg: Config, run: Runner): Promise<GuardSpec> {
  return { ...imdsTarget(cfg), gids: await resolveGids(cfg, run) };
}
