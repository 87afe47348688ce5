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
import { decideMount } from './findmnt.js';
import { checkMountHelper, checkReachable, tcpProbe, type TcpProbe } from './diagnose.js';
import { storageKey, type AzureHttpOptions } from './key.js';
import { decide, mountNow, readMountTable, unmountNow } from './mount.js';
import { verifyShareKey } from './rest.js';
import { unitNames } from './units.js';

export { closeHandlesAndUnmount, ensureShareFolder, isMounted, probeShare, remountShare, shareUsage } from './probe.js';
export type { ShareProbe, TerminateResult } from './probe.js';
export type { ShareUsage } from './rest.js';

/** What `check` hands to `apply` (facts only: never the key). */
interface ShareFound {
  writeCredentials: boolean;
  writeUnits: string[];
  removeUnits: string[];
  mount: boolean;
  remount: boolean;
}

/** Seams for unit tests; production uses the defaults. */
export interface ShareMountDeps {
  tcp?: TcpProbe;
  kernelRelease?: string;
  http?: AzureHttpOptions;
}

async function unitFileChanges(ctx: TaskContext, d: DesiredShare): Promise<{ write: string[]; remove: string[] }> {
  const write: string[] = [];
  for (const [name, content] of Object.entries(d.units.files)) {
    if ((await readIfExists(path.join(ctx.paths.systemdUnitDir, name))) !== content) write.push(name);
  }
  // A Kerberos config switched to key mode leaves an automount that would shadow the mount.
  const remove: string[] = [];
  const stale = unitNames(d.mountPoint).automount;
  if (!d.units.files[stale] && (await readIfExists(path.join(ctx.paths.systemdUnitDir, stale)))?.startsWith('# Written by dsvm-agent'))
    remove.push(stale);
  return { write, remove };
}

async function check(ctx: TaskContext, deps: Required<Pick<ShareMountDeps, 'tcp'>> & ShareMountDeps): Promise<CheckResult> {
  const d = await desiredShare(ctx, deps.kernelRelease);
  const changes: string[] = [];
  const warnings: string[] = [];
  const decision = decide(await readMountTable(ctx), d);
  if (decision.state === 'other' || (decision.state === 'automount-armed' && d.mode !== 'smb-kerberos')) {
    throw permanent(
      `share: ${d.mountPoint} already has ${decision.entry.source} (${decision.entry.fstype}) mounted; the agent never mounts over another filesystem`,
      {
        fix: `unmount it (umount ${d.mountPoint}) and remove whatever mounts it (fstab line, unit), or set share.mountPoint to another path`,
        reason: 'share-mountpoint-busy',
      },
    );
  }
  const found: ShareFound = { writeCredentials: false, writeUnits: [], removeUnits: [], mount: false, remount: false };
  let keyChanged = false;
  if (d.mode === 'smb-key') {
    const content = renderCredentials(d.share.account, await storageKey(ctx, deps.http));
    const exists = (await readIfExists(d.credentialsFile)) !== undefined;
    const problem = await credentialsModeProblem(d.credentialsFile);
    if (!exists) changes.push(`write credentials file ${d.credentialsSystemFile} (root, 0600)`);
    else if (!(await credentialsCurrent(d.credentialsFile, content))) {
      keyChanged = true;
      changes.push(`rewrite credentials file ${d.credentialsSystemFile}: the storage key changed`);
    } else if (problem) changes.push(`make ${d.credentialsSystemFile} root-only 0600 (it has ${problem})`);
    found.writeCredentials = !exists || keyChanged || problem !== undefined;
  }
  const units = await unitFileChanges(ctx, d);
  found.writeUnits = units.write;
  found.removeUnits = units.remove;
  for (const u of units.write) changes.push(`write unit ${path.join(systemPath(ctx.paths, ctx.paths.systemdUnitDir), u)}`);
  for (const u of units.remove) changes.push(`remove unit ${u} (no longer used)`);

  const ready = decision.state === 'mounted' || decision.state === 'automount-armed';
  if (!ready) {
    checkMountHelper(ctx, d.mode);
    await checkReachable(ctx, deps.tcp);
    if (d.mode === 'smb-key') {
      const w = await verifyShareKey(ctx, deps.http ?? {});
      if (w) warnings.push(w);
    }
    const entries = await readdir(d.realMountPoint).catch(() => undefined);
    if (entries === undefined) changes.push(`create mount point ${d.mountPoint}`);
    else if (entries.length > 0)
      warnings.push(`${d.mountPoint} is not empty (${entries.length} entries): the share will hide them while mounted`);
    const onDemand = d.mode === 'smb-kerberos' && ctx.services.kind === 'systemd';
    changes.push(onDemand ? `start ${d.units.entry} (mounts ${d.source} on first access)` : `mount ${d.source} at ${d.mountPoint}`);
    found.mount = true;
  } else if (decision.state === 'mounted' && (keyChanged || units.write.includes(d.units.mount))) {
    changes.push(`remount ${d.mountPoint} to use the new ${keyChanged ? 'key' : 'options'}`);
    found.remount = true;
  }
  return { changes, warnings, detail: { ...found, mode: d.mode, source: d.source, mountPoint: d.mountPoint, unit: d.units.entry } };
}

async function apply(ctx: TaskContext, result: CheckResult, deps: ShareMountDeps): Promise<void> {
  const found = result.detail as unknown as ShareFound;
  const d = await desiredShare(ctx, deps.kernelRelease);
  const log = ctx.log.child('share-mount');
  if (found.writeCredentials)
    await writeCredentials(d.credentialsFile, renderCredentials(d.share.account, await storageKey(ctx, deps.http)));
  for (const name of found.writeUnits)
    await writeIfChanged(path.join(ctx.paths.systemdUnitDir, name), d.units.files[name] as string, { mode: 0o644 });
  for (const name of found.removeUnits) {
    await ctx.services.disable(name).catch(() => undefined);
    await rm(path.join(ctx.paths.systemdUnitDir, name), { force: true });
  }
  if (found.writeUnits.length > 0 || found.removeUnits.length > 0) {
    await ctx.services.daemonReload();
    await ctx.services.enable(d.units.entry);
  }
  ctx.state.facts.shareSource = d.source;
  ctx.state.facts.shareUnit = d.units.entry;
  if (found.mount) {
    await mkdir(d.realMountPoint, { recursive: true, mode: 0o755 });
    await mountNow(ctx, d);
  } else if (found.remount) {
    try {
      await unmountNow(ctx, d, { lazy: false });
      await mountNow(ctx, d);
    } catch (err) {
      // The running session keeps working with the key it authenticated with.
      log.warn(
        `could not remount ${d.mountPoint} now (${(err as Error).message}); the new key or options apply at the next remount or boot`,
      );
      if (!(await readMountTable(ctx).then((e) => decide(e, d).state === 'mounted'))) await mountNow(ctx, d);
    }
  }
}

/** Remove what the task left: unmount, units, credentials. */
async function undo(ctx: TaskContext): Promise<string[]> {
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
    undo: (ctx) => undo(ctx),
  };
}

/** Mount the Azure Files share persistently. */
export const shareMountTask: Task = createShareMountTask();
