import type { Config } from '../../agent/config-schema.js';
import type { RunResult, Runner } from '../../agent/runner.js';
import { summarize } from '../../agent/runner.js';
import { checkName } from './names.js';
import {
  denyGroupNames,
  isAllowed,
  loginGroupNames,
  parseGroupEntryIds,
  parseGroupIds,
  parsePasswdLine,
  skipReason,
  type Account,
} from './plan.js';

/** The account to act for, or why there is none. */
export type Resolution =
  { ok: true; account: Account } | { ok: false; status: 'skipped' | 'failed' | 'refused'; reason: string; message: string };

/**
 * Resolve a login name through NSS, as the rest of the system does: the
 * canonical name, uid, gid and home from `getent passwd`, never the raw
 * PAM_USER. Then apply the VM's rules: system accounts (below
 * workspace.minUid) and users outside the allowed groups get nothing.
 *
 * The group check duplicates what sssd's access provider enforces in the
 * PAM account stack on purpose: pam_exec in the session stack cannot know
 * the account stack ran (pamtester, `su` from root, a JupyterHub that skips
 * it), and a folder on the team share is not for everyone NSS knows.
 * Groups compare by gid, both sides resolved through NSS (see parseGroupIds).
 */
export async function resolveAccount(
  run: Runner,
  rawName: string,
  cfg: Pick<Config, 'domain' | 'workspace'>,
  timeoutMs: number,
): Promise<Resolution> {
  const bad = checkName(rawName);
  if (bad) return { ok: false, status: 'failed', reason: bad.reason, message: bad.message };
  // getent looks a number up as a uid: "1001" would act for whoever has uid 1001.
  if (/^\d+$/.test(rawName))
    return { ok: false, status: 'failed', reason: 'bad-name', message: 'the user name is all digits (NSS would read it as a uid)' };
  const groupNames = loginGroupNames(cfg);
  const denyNames = denyGroupNames(cfg);
  const [pw, groups, allowed, denied] = await Promise.all([
    run({ file: 'getent', args: ['passwd', '--', rawName], timeoutMs }),
    groupNames.length + denyNames.length > 0 ? run({ file: 'id', args: ['-G', '--', rawName], timeoutMs }) : undefined,
    groupNames.length > 0 ? run({ file: 'getent', args: ['group', '--', ...groupNames], timeoutMs }) : undefined,
    denyNames.length > 0 ? run({ file: 'getent', args: ['group', '--', ...denyNames], timeoutMs }) : undefined,
  ]);
  if (pw.exitCode === 2 && cfg.domain.idMapping === 'posix')
    // sssd with ldap_id_mapping = False does not show a user whose AD
    // account lacks uidNumber (or whose gidNumber is missing): to NSS that
    // user does not exist, though the name is right.
    // Refused (logged as a warning): the admin has to act, and no folder is made.
    return {
      ok: false,
      status: 'refused',
      reason: 'no-posix-ids',
      message: `no user "${rawName}" in NSS (getent passwd): with domain.idMapping: posix sssd shows only users whose AD account has uidNumber and gidNumber: give ${rawName} POSIX attributes in AD (or check the name, or use domain.idMapping: auto)`,
    };
  if (pw.exitCode === 2)
    return {
      ok: false,
      status: 'failed',
      reason: 'unknown-user',
      message: `no user "${rawName}" in NSS (getent passwd): check the name, or that sssd is running`,
    };
  if (pw.exitCode !== 0) return { ok: false, status: 'failed', reason: 'nss-error', message: `getent passwd ${rawName}: ${summarize(pw)}` };
  const account = parsePasswdLine(pw.stdout.split('\n')[0] ?? '');
  if (!account)
    return {
      ok: false,
      status: 'failed',
      reason: 'nss-error',
      message: `getent passwd ${rawName} returned an entry the agent cannot read`,
    };
  const system = skipReason(account, cfg);
  if (system) return { ok: false, status: 'skipped', reason: 'system-account', message: `${account.name}: ${system}` };
  if (groups && denied) {
    const refusal = denyRefusal(account.name, rawName, groups, denied, denyNames);
    if (refusal) return refusal;
  }
  if (groups && allowed) {
    const refusal = groupRefusal(account.name, rawName, groups, allowed, groupNames);
    if (refusal) return refusal;
  }
  return { ok: true, account };
}

/** Why domain.denyGroups keeps the user off this VM, or undefined. Deny wins over allow, as in sssd's simple provider. */
function denyRefusal(
  name: string,
  rawName: string,
  groups: RunResult,
  denied: RunResult,
  denyNames: string[],
): Extract<Resolution, { ok: false }> | undefined {
  const userGids = groups.exitCode === 0 ? parseGroupIds(groups.stdout) : undefined;
  if (!userGids) return { ok: false, status: 'failed', reason: 'nss-error', message: `id -G ${rawName}: ${summarize(groups)}` };
  if (denied.exitCode !== 0 && denied.exitCode !== 2)
    return { ok: false, status: 'failed', reason: 'nss-error', message: `getent group (deny groups): ${summarize(denied)}` };
  if (!isAllowed(userGids, parseGroupEntryIds(denied.stdout))) return undefined;
  return {
    ok: false,
    status: 'skipped',
    reason: 'denied',
    message: `${name} is in one of domain.denyGroups (${denyNames.map((g) => `"${g}"`).join(', ')}): not a user of this VM`,
  };
}

/** Why the user's groups keep them off this VM (or NSS failed to say), or undefined when they may use it. */
function groupRefusal(
  name: string,
  rawName: string,
  groups: RunResult,
  allowed: RunResult,
  groupNames: string[],
): Extract<Resolution, { ok: false }> | undefined {
  const userGids = groups.exitCode === 0 ? parseGroupIds(groups.stdout) : undefined;
  if (!userGids) return { ok: false, status: 'failed', reason: 'nss-error', message: `id -G ${rawName}: ${summarize(groups)}` };
  // getent exits 2 when some of the keys are not found and still prints the others.
  if (allowed.exitCode !== 0 && allowed.exitCode !== 2)
    return { ok: false, status: 'failed', reason: 'nss-error', message: `getent group (login groups): ${summarize(allowed)}` };
  const allowedGids = parseGroupEntryIds(allowed.stdout);
  if (isAllowed(userGids, allowedGids)) return undefined;
  const list = groupNames.map((g) => `"${g}"`).join(', ');
  return {
    ok: false,
    status: 'skipped',
    reason: 'not-allowed',
    message:
      allowedGids.length === 0
        ? `${name}: none of domain.allowGroups/sudoGroups (${list}) resolves through NSS (getent group): nobody may use this VM until they do`
        : `${name} is in none of domain.allowGroups/sudoGroups (${list}): not a user of this VM`,
  };
}
