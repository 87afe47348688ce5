import { hostname as osHostname } from 'node:os';
import { permanent, transient } from '../../agent/errors.js';
import type { TaskContext } from '../../agent/task.js';
import { directoryError, domainDn, modifyArgv, openJoinTicket, parseLdif, type JoinTicket } from './adcli-compat.js';
import { candidateNames, judgeExisting, primaryComputerName, vmIdStamp } from './computer-name.js';
import { askAdcliOnce, joinSecret, lookupComputer, type AdcliAsk } from './lookup.js';

/*
 * The computer name's I/O: what the pure name rule (computer-name.ts) reads
 * (config, IMDS, host name) and what it asks the directory (who holds a name).
 */

/** Inputs for the name rule: config, IMDS (optional: a VM outside Azure has none) and the host name. */
async function nameSources(ctx: TaskContext): Promise<Parameters<typeof primaryComputerName>[0]> {
  let vmScaleSetName = '';
  let vmName = '';
  try {
    const c = await ctx.imds.compute();
    vmScaleSetName = c.vmScaleSetName;
    vmName = c.name;
  } catch (err) {
    ctx.log.debug(`IMDS compute unavailable, naming from the host name: ${(err as Error).message}`);
  }
  const hostname = ctx.state.facts.hostname ?? osHostname();
  return { configured: ctx.cfg.domain.computerName, vmScaleSetName, vmName, hostname };
}

/**
 * Pick the computer name for a join: the primary derived name, or the
 * first alternate no other live VM holds (see computer-name.ts and
 * docs/domain-join.md for the rule).
 */
export async function chooseComputerName(ctx: TaskContext, adcli: AdcliAsk = askAdcliOnce(ctx)): Promise<{ name: string; why: string }> {
  const primary = primaryComputerName(await nameSources(ctx));
  const explicit = primary.source === 'explicit';
  if (ctx.cfg.domain.oneTimePassword) return { name: primary.name, why: `pre-staged account ${primary.name}` };
  const vmId = ctx.state.vmId;
  const taken: string[] = [];
  for (const name of candidateNames(primary, vmId)) {
    const verdict = judgeExisting(await lookupComputer(ctx, name, adcli), vmId, ctx.clock.now(), explicit);
    if (verdict.use)
      return { name, why: `${primary.source} name ${name} (${verdict.why}${primary.shortened ? `, shortened from ${primary.from}` : ''})` };
    taken.push(`${name} (held by ${verdict.holder})`);
  }
  throw permanent(`computer name: every candidate is held by another live machine: ${taken.join(', ')}`, {
    reason: 'computer-name-taken',
    fix: explicit
      ? 'choose another domain.computerName, or delete the stale computer object'
      : 'delete stale computer objects in the OU, or set domain.computerName',
  });
}

/**
 * May a VM whose trust broke rejoin under its old name? Not when the object
 * now carries another live VM's stamp: while this VM was away (deallocated
 * beyond the stale limit) another took the name over by the rule, and
 * taking it back would break that one, which would take it back in turn.
 */
export async function stillOurs(ctx: TaskContext, name: string, adcli: AdcliAsk): Promise<boolean> {
  const explicit = ctx.cfg.domain.computerName !== 'auto';
  const verdict = judgeExisting(await lookupComputer(ctx, name, adcli), ctx.state.vmId, ctx.clock.now(), explicit);
  if (!verdict.use) ctx.log.warn(`${name} is now held by ${verdict.holder}: joining under another name`);
  return verdict.use;
}

/** adcli's own values for a new computer object: WORKSTATION_TRUST_ACCOUNT | DONT_EXPIRE_PASSWD. */
const NEW_COMPUTER_UAC = '69632';

/**
 * Make the chosen name this VM's before joining with it. Two VMs that derive
 * the same name at the same moment both find it free, and `adcli join`
 * takes over an existing account (it resets the password): the later join
 * would silently break the earlier VM's keytab. An LDAP add is atomic on
 * the DC, so the object is created here first, as adcli creates it, with
 * this VM's stamp: of two VMs exactly one add succeeds. The other finds the
 * object, judges it by the name rule again (its own from an interrupted
 * run, stale, or an explicit name: go on) and otherwise fails transiently,
 * so the retry's plan picks the next name. The object has no password
 * until adcli sets one: nothing can log in with it meanwhile.
 * It uses the join account's ticket from claimTicket, which the join then
 * uses in turn; no ticket, no claim.
 */
export async function claimComputerName(ctx: TaskContext, name: string, adcli: AdcliAsk, ticket: JoinTicket | undefined): Promise<void> {
  // No ticket: a pre-staged account, or no DC from a preflight (claimTicket).
  if (!ticket) {
    ctx.log.debug(`${name} is joined without a claim`);
    return;
  }
  const realm = ctx.cfg.domain.name.toUpperCase();
  const dc = ticket.dc;
  const vmId = ctx.state.vmId;
  const { env } = ticket;
  const container = ctx.cfg.domain.computerOu ?? (await computersContainer(ctx, dc, realm, env));
  const dn = `CN=${name},${container}`;
  const ldif = [
    `dn: ${dn}`,
    'changetype: add',
    'objectClass: computer',
    `sAMAccountName: ${name}$`,
    `userAccountControl: ${NEW_COMPUTER_UAC}`,
    `description: ${vmIdStamp(vmId)}`,
    '',
  ].join('\n');
  const r = await ctx.run({ file: 'ldapmodify', args: modifyArgv(dc), input: ldif, env, timeoutMs: 60_000 });
  if (r.exitCode === 0) {
    ctx.log.debug(`claimed ${name} on ${dc}`);
    return;
  }
  // 68 entryAlreadyExists (same DN); 19 constraint violation (sAMAccountName held elsewhere): someone holds it.
  if (!/\((68|19)\)|already exists/i.test(`${r.stderr}${r.stdout}`))
    throw directoryError(`ldapmodify add ${dn}`, r, 'check domain.joinUser and the join password secret');
  const explicit = ctx.cfg.domain.computerName !== 'auto';
  const verdict = judgeExisting(await lookupComputer(ctx, name, adcli), vmId, ctx.clock.now(), explicit);
  if (verdict.use) return;
  throw transient(`computer name ${name} was taken by ${verdict.holder} while this VM was about to join with it`, {
    reason: 'computer-name-raced',
    fix: 'nothing to do: the next attempt picks the next free name',
  });
}

/**
 * The join account's ticket for the claim and then the join, or undefined
 * when no claim is made: a pre-staged account (one-time password) is the
 * administrator's, and without a DC from a preflight (a repair's rejoin of
 * this VM's own name, where adcli finds a DC itself) there is no race to
 * close and no DC to add the object at. The caller closes it.
 */
export async function claimTicket(ctx: TaskContext): Promise<JoinTicket | undefined> {
  const secret = await joinSecret(ctx);
  const dc = ctx.state.facts.domainController?.host;
  if (secret.kind !== 'user' || !dc) return undefined;
  return openJoinTicket(ctx, { realm: ctx.cfg.domain.name.toUpperCase(), dc, user: secret.user!, password: secret.password });
}

/** Where adcli creates computer objects without an OU: the domain's well-known computers container. */
async function computersContainer(ctx: TaskContext, dc: string, realm: string, env: Record<string, string>): Promise<string> {
  const base = domainDn(realm);
  const r = await ctx.run({
    file: 'ldapsearch',
    args: [...modifyArgv(dc), '-LLL', '-o', 'ldif-wrap=no', '-s', 'base', '-b', base, '(objectClass=*)', 'wellKnownObjects'],
    env,
    timeoutMs: 60_000,
  });
  if (r.exitCode !== 0)
    throw directoryError(`ldapsearch wellKnownObjects of ${base}`, r, 'check domain.joinUser and the join password secret');
  const prefix = 'B:32:AA312825768811D1ADED00C04FD8D5CD:';
  const known = parseLdif(r.stdout)[0]?.attrs.wellknownobjects?.find((v) => v.toUpperCase().startsWith(prefix));
  return known ? known.slice(prefix.length) : `CN=Computers,${base}`;
}
