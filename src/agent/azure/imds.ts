import { transient } from '../errors.js';

/** The compute part of IMDS instance metadata we use. */
export interface InstanceCompute {
  vmId: string;
  name: string;
  vmScaleSetName: string;
  resourceGroupName: string;
  subscriptionId: string;
  location: string;
  computerName: string;
}

/**
 * Plain IMDS client (instance metadata, scheduled events). IMDS is http-only,
 * link-local, and must never go through a proxy; fetch has no proxy support
 * by default, which is what we want.
 */
export class ImdsClient {
  constructor(
    private readonly endpoint: string,
    private readonly timeoutMs = 3000,
  ) {}

  private url(path: string): string {
    return `${this.endpoint.replace(/\/+$/, '')}${path}`;
  }

  async getJson<T>(path: string): Promise<T> {
    const res = await this.request('GET', path);
    return (await res.json()) as T;
  }

  async request(method: 'GET' | 'POST', path: string, body?: unknown): Promise<Response> {
    let res: Response;
    try {
      res = await fetch(this.url(path), {
        method,
        headers: { Metadata: 'true', ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw transient(`IMDS ${this.endpoint} unreachable: ${(err as Error).message}`, {
        fix: 'IMDS answers only inside Azure; check azure.imdsEndpoint and that no proxy or firewall blocks it',
        reason: 'imds-unreachable',
      });
    }
    if (!res.ok) {
      throw transient(`IMDS ${path.split('?')[0]} answered ${res.status}`, { reason: 'imds-error' });
    }
    return res;
  }

  /** Instance metadata (compute section). */
  async compute(): Promise<InstanceCompute> {
    const doc = await this.getJson<{ compute?: Record<string, unknown> }>('/metadata/instance?api-version=2021-02-01');
    const c = doc.compute ?? {};
    const osProfile = (c.osProfile ?? {}) as Record<string, unknown>;
    const str = (v: unknown): string => (typeof v === 'string' ? v : '');
    return {
      vmId: str(c.vmId),
      name: str(c.name),
      vmScaleSetName: str(c.vmScaleSetName),
      resourceGroupName: str(c.resourceGroupName),
      subscriptionId: str(c.subscriptionId),
      location: str(c.location),
      computerName: str(osProfile.computerName),
    };
  }
}
