import { hostname as osHostname } from 'node:os';
import { permanent } from '../../agent/errors.js';
import type { TaskContext } from '../../agent/task.js';
import { candidateNames, judgeExisting, primaryComputerName } from './computer-name.js';
import { askAdcliOnce, lookupComputer, type AdcliAsk } from './lookup.js';

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
