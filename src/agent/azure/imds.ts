import { nodeHttp, nodeHttps } from '../node-http.js';
import { transient } from '../errors.js';
import { AzureAnswerError, tooLarge } from './bounded.js';

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

/** An IMDS answer: status and body text. */
export interface ImdsResponse {
  status: number;
  body: string;
  contentType: string;
}

/** What to check when IMDS answers but not as IMDS does (an error status, not JSON, too large). */
const IMDS_ANSWER_FIX =
  "retried at the next poll; if it persists, check that nothing (a proxy, an iptables DNAT) answers for 169.254.169.254 in IMDS's place";

/**
 * Plain IMDS client (instance metadata, scheduled events). IMDS is http-only,
 * link-local, and must never go through a proxy. It speaks node:http
 * directly rather than fetch: Node's fetch loads undici on first use, about
 * 6 MB of resident memory for a daemon that only ever sends a few small GETs
 * (measured by bench/daemon.ts), and node:http never reads proxy variables.
 */
export class ImdsClient {
  /**
   * IMDS documents are a few KB (instance metadata with many NICs and tags
   * stays far below this). Anything larger is not IMDS: a proxy or a broken
   * answer, and reading it whole would grow the daemon's memory with it.
   */
  static readonly MAX_ANSWER_BYTES = 1024 * 1024;

  constructor(
    private readonly endpoint: string,
    private readonly timeoutMs = 3000,
  ) {}

  private url(path: string): URL {
    return new URL(`${this.endpoint.replace(/\/+$/, '')}${path}`);
  }

  /**
   * GET a JSON object. Anything else (not JSON, `null`, an array, a string)
   * is refused here with the route in the message: the callers read fields
   * of it, and a TypeError deep in a poll names neither IMDS nor the route.
   */
  async getJson<T>(path: string): Promise<T> {
    const res = await this.request('GET', path);
    const route = path.split('?')[0];
    let doc: unknown;
    try {
      doc = JSON.parse(res.body);
    } catch {
      throw transient(`IMDS ${route} answered something that is not JSON (${res.contentType || 'no content type'})`, {
        reason: 'imds-error',
        fix: IMDS_ANSWER_FIX,
      });
    }
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc))
      throw transient(`IMDS ${route} answered JSON that is not an object`, { reason: 'imds-error', fix: IMDS_ANSWER_FIX });
    return doc as T;
  }

  async request(method: 'GET' | 'POST', path: string, body?: unknown): Promise<ImdsResponse> {
    let res: ImdsResponse;
    try {
      res = await this.send(method, this.url(path), body === undefined ? undefined : JSON.stringify(body));
    } catch (err) {
      if (err instanceof AzureAnswerError && err.code === 'ANSWER_TOO_LARGE')
        throw transient(err.message, { reason: 'imds-error', fix: IMDS_ANSWER_FIX });
      throw transient(`IMDS ${path.split('?')[0]} at ${this.endpoint} unreachable: ${(err as Error).message}`, {
        fix: 'IMDS answers only inside Azure; check azure.imdsEndpoint and that no proxy or firewall blocks it',
        reason: 'imds-unreachable',
      });
    }
    if (res.status < 200 || res.status > 299) {
      throw transient(`IMDS ${path.split('?')[0]} answered ${res.status}`, { reason: 'imds-error', fix: IMDS_ANSWER_FIX });
    }
    return res;
  }

  private async send(method: string, url: URL, body: string | undefined): Promise<ImdsResponse> {
    const mod = url.protocol === 'https:' ? nodeHttps() : nodeHttp();
    return new Promise<ImdsResponse>((resolve, reject) => {
      const req = mod.request(
        url,
        {
          method,
          agent: false,
          headers: {
            Metadata: 'true',
            ...(body === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            // Stop reading past the bound: the socket goes, not the daemon's memory.
            if (size > ImdsClient.MAX_ANSWER_BYTES) {
              reject(tooLarge(`IMDS ${url.pathname}`, ImdsClient.MAX_ANSWER_BYTES));
              req.destroy();
            } else chunks.push(c);
          });
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              body: Buffer.concat(chunks).toString('utf8'),
              contentType: String(res.headers['content-type'] ?? ''),
            }),
          );
          res.on('error', reject);
        },
      );
      // One deadline for connect, headers and body alike.
      const timer = setTimeout(() => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
      req.on('close', () => clearTimeout(timer));
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      req.end(body);
    });
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
