import path from 'node:path';
import { rm } from 'node:fs/promises';
import { permanent } from '../../agent/errors.js';
import { readIfExists, writeIfChanged } from '../../agent/fsutil.js';
import type { Paths } from '../../agent/paths.js';
import type { CheckResult, Task, TaskContext } from '../../agent/task.js';
import { GUARD_UNIT, guardRulesFile, renderGuardUnit } from './boot.js';
import { guardSpec, guardWanted } from './desired.js';
import { deleteGuard, installNftables, listGuard, loadGuard } from './nft.js';
import { desiredTable, guardDifferences, GUARD_FAMILY, GUARD_TABLE, renderGuardScript, type GuardSpec } from './ruleset.js';

export { guardWanted, identitySecretKeys, imdsTarget } from './desired.js';
export { listGuard } from './nft.js';
export { GUARD_UNIT } from './boot.js';

/** The state fact that says the guard is installed (so turning it off later removes it). */

/** What `check` hands to `apply`: facts only. */
interface GuardFound {
  wanted: boolean;
  spec?: GuardSpec;
  loadTable: boolean;
  removeTable: boolean;
  writeRules: boolean;
  writeUnit: boolean;
  removeFiles: boolean;
}

const TABLE = `nftables table ${GUARD_FAMILY} ${GUARD_TABLE}`;

function onSystem(paths: Paths, real: string): string {
  return paths.root === '/' ? real : `/${path.relative(paths.root, real)}`;
}

function files(ctx: TaskContext): { rules: string; unit: string; rulesOnSystem: string; unitOnSystem: string } {
  const rules = guardRulesFile(ctx.paths);
  const unit = path.join(ctx.paths.systemdUnitDir, GUARD_UNIT);
  return { rules, unit, rulesOnSystem: onSystem(ctx.paths, rules), unitOnSystem: onSystem(ctx.paths, unit) };
}

function who(spec: GuardSpec, groups: readonly (string | number)[]): string {
  const allowed = groups.length ? `root and ${groups.map(String).join(', ')} (gid ${spec.gids.join(', ')})` : 'root only';
  return `${allowed} may reach ${spec.address}:${spec.port}`;
}

async function check(ctx: TaskContext): Promise<CheckResult> {
  const { on, why } = guardWanted(ctx.cfg);
  const f = files(ctx);
  const listing = await listGuard(ctx.run);
  const found: GuardFound = { wanted: on, loadTable: false, removeTable: false, writeRules: false, writeUnit: false, removeFiles: false };
  const changes: string[] = [];
  if (!on) {
    found.removeTable = listing.state === 'present';
    found.removeFiles = (await readIfExists(f.rules)) !== undefined || (await readIfExists(f.unit)) !== undefined;
    if (found.removeTable) changes.push(`remove ${TABLE}: ${why}`);
    if (found.removeFiles) changes.push(`remove ${f.unitOnSystem} and ${f.rulesOnSystem}`);
    return { changes, detail: { ...found } };
  }
  if (listing.state === 'missing-nft') throw permanent(`nft is not installed, and the IMDS guard is on (${why})`, installNftables);
  const spec = await guardSpec(ctx.cfg, ctx.run);
  found.spec = spec;
  const script = renderGuardScript(spec);
  const rule = `${who(spec, ctx.cfg.azure.imdsAccess.allowGroups)}; others get a TCP reset (${why})`;
  if (listing.state === 'absent') {
    found.loadTable = true;
    changes.push(`install ${TABLE}: ${rule}`);
  } else {
    const diff = guardDifferences(listing.table, desiredTable(spec));
    if (diff.length) {
      found.loadTable = true;
      changes.push(`replace ${TABLE} (${diff.join('; ')}): ${rule}`);
    }
  }
  found.writeRules = (await readIfExists(f.rules)) !== script;
  found.writeUnit = (await readIfExists(f.unit)) !== renderGuardUnit(f.rulesOnSystem);
  if (found.writeRules) changes.push(`write ${f.rulesOnSystem} (the rule set, loaded at boot)`);
  if (found.writeUnit) changes.push(`write and enable ${f.unitOnSystem} (loads the guard at every boot, before the network)`);
  return { changes, detail: { ...found } };
}

async function apply(ctx: TaskContext, result: CheckResult): Promise<void> {
  const found = result.detail as unknown as GuardFound;
  const f = files(ctx);
  if (!found.wanted) {
    if (found.removeTable) await deleteGuard(ctx.run);
    if (found.removeFiles) await removeBootFiles(ctx);
    delete ctx.state.facts.imdsGuard;
    return;
  }
  const spec = found.spec as GuardSpec;
  const script = renderGuardScript(spec);
  // The kernel first: the guard is on the moment this returns, before anything is written for the next boot.
  if (found.loadTable) await loadGuard(ctx.run, script);
  ctx.state.facts.imdsGuard = { address: spec.address, port: spec.port, gids: spec.gids };
  if (found.writeRules) await writeIfChanged(f.rules, script, { mode: 0o644 });
  if (found.writeUnit) {
    await writeIfChanged(f.unit, renderGuardUnit(f.rulesOnSystem), { mode: 0o644 });
    await ctx.services.daemonReload();
    await ctx.services.enable(GUARD_UNIT);
  }
}

/** The unit and rule file; returns what went, by system path. */
async function removeBootFiles(ctx: TaskContext): Promise<string[]> {
  const f = files(ctx);
  const removed: string[] = [];
  if ((await readIfExists(f.unit)) !== undefined) {
    await ctx.services.disable(GUARD_UNIT).catch(() => undefined);
    await rm(f.unit, { force: true });
    await ctx.services.daemonReload();
    removed.push(`unit ${f.unitOnSystem}`);
  }
  if ((await readIfExists(f.rules)) !== undefined) {
    await rm(f.rules, { force: true });
    removed.push(`rule file ${f.rulesOnSystem}`);
  }
  return removed;
}

/** Deprovision: the table, the boot unit and its rule file, whatever the config says now. */
export async function undoImdsGuard(ctx: TaskContext): Promise<string[]> {
  const removed: string[] = [];
  if (await deleteGuard(ctx.run)) removed.push(TABLE);
  removed.push(...(await removeBootFiles(ctx)));
  delete ctx.state.facts.imdsGuard;
  return removed;
}

/**
 * Keep the managed identity to root and azure.imdsAccess.allowGroups: an
 * nftables rule in the agent's own table resets every other local user's
 * connection to the metadata endpoint.
 */
export const imdsGuardTask: Task = {
  id: 'imds-guard',
  description: 'let only root and the allowed groups reach the managed identity (IMDS)',
  skip: (ctx) => {
    const { on, why } = guardWanted(ctx.cfg);
    // Off now but installed before: check runs to take it away.
    return on || ctx.state.facts.imdsGuard !== undefined ? undefined : `${why}: IMDS stays open to every local user`;
  },
  check,
  apply,
};
