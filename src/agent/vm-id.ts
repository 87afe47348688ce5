import { readFile } from 'node:fs/promises';
import type { ImdsClient } from './azure/imds.js';
import type { Logger } from './log.js';
import type { Paths } from './paths.js';

/** The ids this VM is known by, per source; any may be missing. */
export type VmIds = Partial<Record<VmIdSource, string>>;
export type VmIdSource = 'imds' | 'product_uuid' | 'cloud-init';

/** Preference order for the one id that names the VM in logs and state. */
export const vmIdSources: readonly VmIdSource[] = ['imds', 'product_uuid', 'cloud-init'];

/** The primary id and where it came from. */
export function primaryVmId(ids: VmIds): { vmId: string; source: string } {
  for (const s of vmIdSources) {
    const id = ids[s];
    if (id) return { vmId: id, source: s };
  }
  return { vmId: 'unknown', source: 'none' };
}

/**
 * Whether `now` is the VM recorded in `before`. Every source both sides
 * know must agree; with none in common the VM is taken to be the same (a
 * source that was slow at first boot must not make a second first boot: a
 * captured image booted as a new VM changes every id it has, and Azure
 * always has the SMBIOS product UUID).
 */
export function sameVm(before: VmIds, now: VmIds): boolean {
  return vmIdSources.every((s) => !before[s] || !now[s] || before[s] === now[s]);
}

/**
 * Every id of this VM: IMDS vmId (the platform's own id; asked a few times,
 * since IMDS can be slow right after boot), the SMBIOS product UUID (what
 * WALinuxAgent uses) and cloud-init's instance id. A captured image booted
 * as a new VM gets new ids, so first boot runs again there.
 */
export async function resolveVmIds(deps: { imds: ImdsClient; paths: Paths; log: Logger; imdsAttempts?: number }): Promise<VmIds> {
  const ids: VmIds = {};
  const attempts = deps.imdsAttempts ?? 3;
  for (let i = 1; i <= attempts; i++) {
    try {
      const compute = await deps.imds.compute();
      if (compute.vmId) ids.imds = compute.vmId.toLowerCase();
      break;
    } catch (err) {
      deps.log.debug(`IMDS vmId unavailable (attempt ${i} of ${attempts}): ${(err as Error).message}`);
    }
  }
  for (const [file, source] of [
    [deps.paths.productUuid, 'product_uuid'],
    [deps.paths.cloudInstanceId, 'cloud-init'],
  ] as const) {
    try {
      const id = (await readFile(file, 'utf8')).trim().toLowerCase();
      if (id) ids[source] = id;
    } catch {
      /* this source is not there */
    }
  }
  return ids;
}
