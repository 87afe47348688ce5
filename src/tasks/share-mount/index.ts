import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { permanent } from '../../agent/errors.js';
import { readIfExists, writeIfChanged } from '../../agent/fsutil.js';
import type { CheckResult, Task, TaskContext } from '../../agent/task.js';
import {
  credentialsCurrent,
  credentialsModeProblem,
  removeCredentials,
  renderCredentials,
  systemPath,
  writeCredentials,
} from './credentials.js';
import { desiredShare, normalizeMountPoint, type DesiredShare } from './desired.js';
import { mountSource } from './endpoint.js';
import { decideMount, type MountEntry } from './findmnt.js';
import { checkMountHelper, checkReachable, tcpProbe, type TcpProbe } from './diagnose.js';
import { storageKey, type AzureHttpOptions } from './key.js';
import { decide, mountNow, readMountTable, unmountNow } from './mount.js';
import { remountForChange, verifyNewKey } from './remount.js';
import { verifyShareKey } from './rest.js';
import { unitNames } from './units.js';
import { ensureWorkspaceRoot, rootFolderOnMount, workspaceRootInShare } from './workspace-root.js';

export { closeHandlesAndUnmount, ensureShareFolder, isMounted, probeShare, remountShare, shareUsage } from './probe.js';
export type { ShareProbe, TerminateResult } from './probe.js';
export type { ShareUsage } from './rest.js';

/** What `check` hands to `apply` (facts only: never the key). */
interface ShareFound {
  writeCredentials: boolean;
  /** The key differs from the credentials file: keep the old file to fall back to. */
  keyChanged: boolean;
  /** Kerberos or NFS now: the key must not stay on disk. */
  removeCredentials: boolean;
  writeUnits: string[];
  removeUnits: string[];
  /** Our own Kerberos automount trigger holds the mount point: stop it before mounting. */
  disarmAutomount: boolean;
  mount: boolean;
  remount: boolean;
  /** workspace.root inside the share, to make through Files REST. */
  workspaceRoot?: string;
}

/** Seams for unit tests; production uses the defaults. */
export interface ShareMountDeps {
  tcp?: TcpProbe;
  kernelRelease?: string;
  http?: AzureHttpOptions;
}

const MARK = '# Written by dsvm-agent';

async function unitFileChanges(ctx: TaskContext, d: DesiredShare): Promise<{ write: string[]; remove: string[] }> {
  const write: string[] = [];
  for (const [name, content] of Object.entries(d.units.files)) {
    if ((await readIfExists(path.join(ctx.paths.systemdUnitDir, name))) !== content) write.push(name);
  }
  // A Kerberos config switched to key mode leaves an automount that would shadow the mount.
  const remove: string[] = [];
  const stale = unitNames(d.mountPoint).automount;
  if (!d.units.files[stale] && (await readIfExists(path.join(ctx.paths.systemdUnitDir, stale)))?.startsWith(MARK)) remove.push(stale);
  return { write, remove };
}

function busy(d: DesiredShare, entry: MountEntry): Error {
  return permanent(
    `share: ${d.mountPoint} already has ${entry.source} (${entry.fstype}) mounted; the agent never mounts over another filesystem`,
    {
      fix: `unmount it (umount ${d.mountPoint}) and remove whatever mounts it (fstab line, unit), or set share.mountPoint to another path`,
      reason: 'share-mountpoint-busy',
    },
  );
}

/** The storage key against the credentials file: what to write, and whether the key itself changed. */
async function credentialChanges(
  ctx: TaskContext,
  d: DesiredShare,
  deps: ShareMountDeps,
  found: ShareFound,
  changes: string[],
): Promise<boolean> {
  if (d.mode !== 'smb-key') {
    found.removeCredentials = (await readIfExists(d.credentialsFile)) !== undefined;
    if (found.removeCredentials)
      changes.push(`remove credentials file ${d.credentialsSystemFile}: ${d.mode === 'nfs' ? 'NFS' : 'Kerberos'} uses no storage key`);
    return false;
  }
  const content = renderCredentials(d.share.account, await storageKey(ctx, deps.http));
  const exists = (await readIfExists(d.credentialsFile)) !== undefined;
  const problem = await credentialsModeProblem(d.credentialsFile);
  if (!exists) changes.push(`write credentials file ${d.credentialsSystemFile} (root, 0600)`);
  else if (!(await credentialsCurrent(d.credentialsFile, content))) {
    found.keyChanged = true;
    changes.push(`rewrite credentials file ${d.credentialsSystemFile}: the storage key changed`);
  } else if (problem) changes.push(`make ${d.credentialsSystemFile} root-only 0600 (it has ${problem})`);
  found.writeCredentials = !exists || found.keyChanged || problem !== undefined;
  return !exists || found.keyChanged;
}

async function check(ctx: TaskContext, deps: Required<Pick<ShareMountDeps, 'tcp'>> & ShareMountDeps): Promise<CheckResult> {
  const d = await desiredShare(ctx, deps.kernelRelease);
  const changes: string[] = [];
  const warnings: string[] = [];
  const decision = decide(await readMountTable(ctx), d);
  const units = await unitFileChanges(ctx, d);
  // An autofs trigger whose .automount unit we wrote (Kerberos mode before) is ours to stop.
  const ownTrigger =
    decision.state === 'automount-armed' && d.mode !== 'smb-kerberos' && units.remove.includes(unitNames(d.mountPoint).automount);
  if (decision.state === 'other') throw busy(d, decision.entry);
  if (decision.state === 'automount-armed' && d.mode !== 'smb-kerberos' && !ownTrigger) throw busy(d, decision.entry);
  const found: ShareFound = {
    writeCredentials: false,
    keyChanged: false,
    removeCredentials: false,
    writeUnits: units.write,
    removeUnits: units.remove,
    disarmAutomount: ownTrigger,
    mount: false,
    remount: false,
  };
  const newKey = await credentialChanges(ctx, d, deps, found, changes);
  for (const u of units.write) changes.push(`write unit ${path.join(systemPath(ctx.paths, ctx.paths.systemdUnitDir), u)}`);
  for (const u of units.remove) changes.push(`remove unit ${u} (no longer used)`);

  const ready = decision.state === 'mounted' || (decision.state === 'automount-armed' && !ownTrigger);
  if (!ready) {
    checkMountHelper(ctx, d.mode);
    await checkReachable(ctx, deps.tcp);
    if (d.mode === 'smb-key') {
      const w = await verifyShareKey(ctx, deps.http ?? {});
      if (w) warnings.push(w);
    }
    if (ownTrigger) changes.push(`stop ${unitNames(d.mountPoint).automount}, the Kerberos automount holding ${d.mountPoint}`);
    // Listing a mount point an autofs trigger holds would set the trigger off.
    const entries = ownTrigger ? [] : await readdir(d.realMountPoint).catch(() => undefined);
    if (entries === undefined) changes.push(`create mount point ${d.mountPoint}`);
    else if (entries.length > 0)
      warnings.push(`${d.mountPoint} is not empty (${entries.length} entries): the share will hide them while mounted`);
    const onDemand = d.mode === 'smb-kerberos' && ctx.services.kind === 'systemd';
    changes.push(onDemand ? `start ${d.units.entry} (mounts ${d.source} on first access)` : `mount ${d.source} at ${d.mountPoint}`);
    found.mount = true;
  } else if (decision.state === 'mounted' && (found.keyChanged || units.write.includes(d.units.mount))) {
    // Checked before anything is touched: a key the account refuses must not replace one that works.
    if (d.mode === 'smb-key' && newKey) {
      const w = found.keyChanged ? await verifyNewKey(ctx, d, deps.http ?? {}) : await verifyShareKey(ctx, deps.http ?? {});
      if (w) warnings.push(w);
    }
    changes.push(`remount ${d.mountPoint} to use the new ${found.keyChanged ? 'key' : 'options'}`);
    found.remount = true;
  }
  await workspaceRootChanges(ctx, d, found, changes, warnings);
  return { changes, warnings, detail: { ...found, mode: d.mode, source: d.source, mountPoint: d.mountPoint, unit: d.units.entry } };
}

async function workspaceRootChanges(
  ctx: TaskContext,
  d: DesiredShare,
  found: ShareFound,
  changes: string[],
  warnings: string[],
): Promise<void> {
  const rel = workspaceRootInShare(d.mountPoint, ctx.cfg.workspace.root);
  if (d.mode !== 'smb-key' || rel === undefined) return;
  const where = `make folder ${rel} in the share for workspace.root ${ctx.cfg.workspace.root}`;
  if (found.mount) {
    changes.push(`${where} (if missing)`);
    found.workspaceRoot = rel;
    return;
  }
  const seen = await rootFolderOnMount(ctx, d, rel);
  if (seen.state === 'unknown') warnings.push(seen.warning);
  if (seen.state !== 'missing') return;
  changes.push(where);
  found.workspaceRoot = rel;
}

async function apply(ctx: TaskContext, result: CheckResult, deps: ShareMountDeps): Promise<void> {
  const found = result.detail as unknown as ShareFound;
  const d = await desiredShare(ctx, deps.kernelRelease);
  const log = ctx.log.child('share-mount');
  // The file the share is mounted with now, to go back to if the new key fails at mount time.
  const previous = found.keyChanged ? await readIfExists(d.credentialsFile) : undefined;
  if (found.writeCredentials)
    await writeCredentials(d.credentialsFile, renderCredentials(d.share.account, await storageKey(ctx, deps.http)));
  for (const name of found.writeUnits)
    await writeIfChanged(path.join(ctx.paths.systemdUnitDir, name), d.units.files[name] as string, { mode: 0o644 });
  for (const name of found.removeUnits) {
    // Disabling leaves a started automount armed; stopping it takes its autofs trigger away.
    await ctx.services.stop(name).catch(() => undefined);
    await ctx.services.disable(name).catch(() => undefined);
    await rm(path.join(ctx.paths.systemdUnitDir, name), { force: true });
  }
  if (found.writeUnits.length > 0 || found.removeUnits.length > 0) {
    await ctx.services.daemonReload();
    await ctx.services.enable(d.units.entry);
  }
  // The key leaves the disk with the mode that needed it; a mounted session keeps its own copy.
  if (found.removeCredentials) await removeCredentials(d.credentialsFile);
  ctx.state.facts.shareSource = d.source;
  ctx.state.facts.shareUnit = d.units.entry;
  if (found.mount) {
    if (found.disarmAutomount) {
      const names = unitNames(d.mountPoint);
      await unmountNow(
        ctx,
        { realMountPoint: d.realMountPoint, units: { mount: names.mount, automount: names.automount } },
        { lazy: false },
      );
    }
    await mkdir(d.realMountPoint, { recursive: true, mode: 0o755 });
    await mountNow(ctx, d);
  } else if (found.remount) {
    await remountForChange(ctx, d, previous, log);
  }
  if (found.workspaceRoot !== undefined) await ensureWorkspaceRoot(ctx, d, found.workspaceRoot, deps.http ?? {});
}

/** Deprovision: remove what the task left: unmount, units, credentials. */
export async function undoShareMount(ctx: TaskContext): Promise<string[]> {
  const share = ctx.cfg.share;
  if (!share) return [];
  const removed: string[] = [];
  const mountPoint = normalizeMountPoint(share.mountPoint);
  const names = unitNames(mountPoint);
  const target = ctx.paths.under(mountPoint);
  // Only our share (or our automount trigger) is unmounted; anything else there is not ours to touch.
  const state = decideMount(await readMountTable(ctx), { target, source: mountSource(share), type: share.type }).state;
  if (state === 'mounted' || state === 'automount-armed') {
    await unmountNow(ctx, { realMountPoint: target, units: names }, { lazy: true });
    removed.push(`mount ${mountPoint}`);
  }
  let unitsRemoved = false;
  for (const name of [names.automount, names.mount]) {
    const file = path.join(ctx.paths.systemdUnitDir, name);
    if ((await readIfExists(file)) === undefined) continue;
    await ctx.services.disable(name).catch(() => undefined);
    await rm(file, { force: true });
    removed.push(`unit ${systemPath(ctx.paths, file)}`);
    unitsRemoved = true;
  }
  if (unitsRemoved) await ctx.services.daemonReload();
  const creds = path.join(ctx.paths.smbCredentialsDir, `${share.account}.cred`);
  for (const f of await removeCredentials(creds)) removed.push(`credentials ${systemPath(ctx.paths, f)}`);
  return removed;
}

/** Build the task; tests inject the TCP probe, kernel release and https agent. */
export function createShareMountTask(deps: ShareMountDeps = {}): Task {
  const full = { ...deps, tcp: deps.tcp ?? tcpProbe };
  return {
    id: 'share-mount',
    description: 'mount the Azure Files share persistently',
    skip: (ctx) => (ctx.cfg.share ? undefined : 'no share configured: workspaces stay on the local disk'),
    check: (ctx) => check(ctx, full),
    apply: (ctx, found) => apply(ctx, found, full),
  };
}

/** Mount the Azure Files share persistently. */
export const shareMountTask: Task = createShareMountTask();
