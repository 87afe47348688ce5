import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { leaveBackoff } from '../../agent/backoff.js';
import { permanent } from '../../agent/errors.js';
import { readIfExists, setMarkedBlock, writeFileAtomic } from '../../agent/fsutil.js';
import { retryTransient, type TaskContext } from '../../agent/task.js';
import { deleteComputerArgv, isNoSuchComputer, parseAdcliError } from './adcli.js';
import { sssdDropInFile, sudoersFile } from './files.js';
import { ADCLI_TIMEOUT_MS } from './lookup.js';
import { pamAuthUpdate, pamEnabled } from './pam.js';
import { MKHOMEDIR_PROFILE, removeSssFromNsswitch, setKrb5Block, SSHD_DROP_IN } from './render.js';
import { SSSD_UNIT } from './sssd-check.js';
import { exists, keytabName } from './status.js';

/* Leaving the domain: the computer account (scale-in, --leave-domain) and every trace of the join (deprovision). */

/**
 * Delete this machine's computer account in AD (scale-in Terminate,
 * `deprovision --leave-domain`). Needs the join account with the "Delete
 * computer objects" right. An account that is already gone is success.
 */
export async function leaveDomain(ctx: TaskContext): Promise<string | undefined> {
  const d = ctx.cfg.domain;
  const domain = d.name.toLowerCase();
  const name = (await keytabName(ctx, domain.toUpperCase())) ?? ctx.state.facts.computerName;
  if (!name) return undefined;
  if (!d.joinUser || !d.joinPassword) {
    throw permanent(
      `cannot delete the computer account ${name}: no join account configured (pre-staged accounts are deleted by the directory's administrators)`,
      {
        reason: 'leave-no-credentials',
        fix: 'delete the computer object in AD, or configure domain.joinUser/joinPassword',
      },
    );
  }
  const password = await ctx.secret(d.joinPassword, 'domain.joinPassword');
  const joinUser = d.joinUser;
  // A DC that is busy or restarting for a few seconds is retried (transient);
  // bad credentials or missing rights fail at once (permanent).
  await retryTransient(ctx, 'delete the computer account', leaveBackoff, async () => {
    const r = await ctx.run({
      file: 'adcli',
      args: deleteComputerArgv(domain, domain.toUpperCase(), joinUser, name),
      input: password,
      timeoutMs: ADCLI_TIMEOUT_MS,
    });
    if (r.exitCode !== 0 && !isNoSuchComputer(r)) throw parseAdcliError('delete-computer', r, { user: joinUser });
  });
  return `computer account ${name} in ${domain.toUpperCase()}`;
}

/** deprovision: remove every trace of the join (and the AD account when asked). */
export async function undoJoin(
  ctx: TaskContext,
  opts: { leaveDomain: boolean; removeDnsRecord?: (ctx: TaskContext) => Promise<unknown> },
): Promise<string[]> {
  const removed: string[] = [];
  const p = ctx.paths;
  if (opts.leaveDomain && opts.removeDnsRecord) {
    // Before the account goes: the record's removal is signed with the keytab
    // (scheduled-events/dns-record.ts). A DNS server that refuses it does not
    // stop image capture: the record is named so it can be removed by hand.
    try {
      const gone = await opts.removeDnsRecord(ctx);
      if (typeof gone === 'string') removed.push(gone);
    } catch (err) {
      ctx.log.warn(`${(err as Error).message}: the computer account is deleted anyway; delete that DNS record by hand`);
    }
  }
  if (opts.leaveDomain) {
    const left = await leaveDomain(ctx);
    if (left) removed.push(left);
  }
  if (await ctx.services.isActive(SSSD_UNIT)) {
    await ctx.services.stop(SSSD_UNIT);
    removed.push('sssd (stopped)');
  }
  await ctx.services.disable(SSSD_UNIT);
  const rmIf = async (file: string): Promise<void> => {
    if (!(await exists(file))) return;
    await rm(file, { force: true });
    removed.push(file);
  };
  await rmIf(p.krb5Keytab);
  await rmIf(p.sssdConf);
  await rmIf(sudoersFile(ctx));
  await rmIf(path.join(p.sshdConfigDir, SSHD_DROP_IN));
  if (await exists(sssdDropInFile(ctx))) {
    await rmIf(sssdDropInFile(ctx));
    await ctx.services.daemonReload();
  }
  if (await pamEnabled(ctx)) {
    await pamAuthUpdate(ctx, ['--remove', MKHOMEDIR_PROFILE]);
    removed.push(`pam profile ${MKHOMEDIR_PROFILE} (disabled)`);
  }
  await rmIf(path.join(p.pamConfigsDir, MKHOMEDIR_PROFILE));
  const krb5 = await readIfExists(p.krb5Conf);
  if (krb5 !== undefined && setKrb5Block(krb5, undefined) !== krb5) {
    await writeBack(p.krb5Conf, setKrb5Block(krb5, undefined));
    removed.push(`${p.krb5Conf} (agent block)`);
  }
  const realmd = await readIfExists(p.realmdConf);
  if (realmd !== undefined && setMarkedBlock(realmd, undefined) !== realmd) {
    const rest = setMarkedBlock(realmd, undefined);
    if (rest.trim() === '') await rm(p.realmdConf, { force: true });
    else await writeBack(p.realmdConf, rest);
    removed.push(`${p.realmdConf} (agent block)`);
  }
  const added = ctx.state.facts.nsswitchAdded ?? [];
  const ns = await readIfExists(p.nsswitchConf);
  if (ns !== undefined && added.length > 0 && removeSssFromNsswitch(ns, added) !== ns) {
    await writeBack(p.nsswitchConf, removeSssFromNsswitch(ns, added));
    removed.push(`${p.nsswitchConf} (sss on ${added.join(', ')})`);
  }
  // The cache holds the domain's users and this machine's identity: an image must not carry it.
  const cache = await readdir(p.sssdDbDir).catch(() => [] as string[]);
  for (const f of cache) await rm(path.join(p.sssdDbDir, f), { force: true, recursive: true });
  if (cache.length > 0) removed.push(`${p.sssdDbDir}/* (sssd cache)`);
  delete ctx.state.facts.computerName;
  delete ctx.state.facts.nsswitchAdded;
  return removed;
}

async function writeBack(file: string, content: string): Promise<void> {
  const mode = (await stat(file)).mode & 0o7777;
  await writeFileAtomic(file, content, { mode });
}
