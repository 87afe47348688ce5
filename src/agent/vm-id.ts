import { readFile } from 'node:fs/promises';
import type { ImdsClient } from './azure/imds.js';
import type { Logger } from './log.js';
import type { Paths } from './paths.js';

/**
 * This VM's identity, which keys the state: IMDS vmId when reachable (the
 * platform's own id), else the SMBIOS product UUID (what WALinuxAgent uses),
 * else cloud-init's instance id. A captured image booted as a new VM gets a
 * new id, so first boot runs again there.
 */
export async function resolveVmId(deps: { imds: ImdsClient; paths: Paths; log: Logger }): Promise<{ vmId: string; source: string }> {
  try {
    const compute = await deps.imds.compute();
    if (compute.vmId) return { vmId: compute.vmId.toLowerCase(), source: 'imds' };
  } catch (err) {
    deps.log.debug(`IMDS vmId unavailable: ${(err as Error).message}`);
  }
  for (const [file, source] of [
    [deps.paths.productUuid, 'product_uuid'],
    [deps.paths.cloudInstanceId, 'cloud-init'],
  ] as const) {
    try {
      const id = (await readFile(file, 'utf8')).trim().toLowerCase();
      if (id) return { vmId: id, source };
    } catch {
      /* try the next source */
    }
  }
  return { vmId: 'unknown', source: 'none' };
}
