import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { armDeps } from './arm.js';
import { startControl } from './control.js';
import { filesDeps } from './files.js';
import { closeServer, FailureInjector, listen, RequestLog, type AnyServer, type ServerDeps } from './http.js';
import { imdsDeps } from './imds.js';
import { keyVaultDeps } from './keyvault.js';
import { FakeState, type Approval, type Handle } from './state.js';
import { makeTls } from './tls.js';
import type { FailSpec, FakeName, FakeUrls, RecordedRequest, Seed } from './types.js';

export type { FailSpec, FakeName, FakeUrls, RecordedRequest, Seed } from './types.js';
export { ROUTES } from './types.js';

export interface StartOptions {
  /** Address every fake listens on and puts in its URL. Default 127.0.0.1. */
  host?: string;
  /** Where the CA and server certificate go (kept on close). Default: a temp dir, removed on close. */
  tlsDir?: string;
  /** `ACCOUNT` or `ACCOUNT/SHARE` → a real folder the Files fake acts on. */
  filesRoots?: Record<string, string>;
  /** Applied at start and again by every reset(). */
  seed?: Seed;
}

export interface FakeStateApi {
  /** Merge a seed (validated; throws on a bad shape). */
  seed(seed: Seed): void;
  /** Current keys of a storage account (creating the account if unknown). */
  storageKeys(account: string): [string, string];
  /** Scheduled-event approvals received, oldest first. */
  approvals(): Approval[];
  /** Handles still open. */
  handles(): Handle[];
  /** Non-secret view of everything (what GET /state returns). */
  summary(): Record<string, unknown>;
  /** The state itself, for assertions no helper covers. */
  readonly raw: FakeState;
}

export interface Fakes {
  urls: FakeUrls;
  /** PEM file of the CA that signed the https fakes' certificate. */
  caFile: string;
  /** The same CA, as PEM text. */
  ca: string;
  state: FakeStateApi;
  /** Requests received, per fake, oldest first (live arrays; reset() empties them). */
  requests: Record<FakeName, RecordedRequest[]>;
  /** Make the next matching requests fail; route is "fake.route", "fake.*" or "*". */
  fail(route: string, spec: FailSpec): void;
  /** Back to the start-up seed; clears failure rules and recorded requests. */
  reset(): void;
  close(): Promise<void>;
  /**
   * An https.Agent for in-process SDK clients: trusts the fake CA and resolves
   * `localhost` / `*.localhost` to 127.0.0.1 without DNS (any other name fails).
   */
  httpsAgent(): https.Agent;
  /** A Key Vault URL whose challenge the SDK's resource verification accepts. */
  vaultUrl(name?: string): string;
}

/**
 * Resolve only loopback names, so a test can never leak a DNS query. Clients
 * hand IPv6 literals over still bracketed ("[::1]"): those resolve to themselves.
 */
export const loopbackLookup: LookupFunction = (hostname, options, callback) => {
  const name = hostname.replace(/^\[(.*)\]$/, '$1');
  const family = isIP(name);
  const loopbackIp = (family === 4 && name.startsWith('127.')) || name === '::1';
  if (!loopbackIp && name !== 'localhost' && !name.endsWith('.localhost')) {
    const err = Object.assign(new Error(`test fakes: refusing to resolve "${hostname}" (only loopback names are allowed)`), {
      code: 'ENOTFOUND',
    });
    callback(err, '', 4);
    return;
  }
  const address = loopbackIp ? name : '127.0.0.1';
  const addressFamily = family || 4;
  if (options.all)
    (callback as unknown as (e: null, a: Array<{ address: string; family: number }>) => void)(null, [{ address, family: addressFamily }]);
  else callback(null, address, addressFamily);
};

async function checkRoots(roots: Record<string, string>): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [key, dir] of Object.entries(roots)) {
    if (!/^[a-z0-9]{3,24}(\/[a-z0-9-]{3,63})?$/.test(key)) throw new Error(`filesRoots: "${key}" is not ACCOUNT or ACCOUNT/SHARE`);
    const abs = path.resolve(dir);
    if (!(await stat(abs).catch(() => undefined))?.isDirectory()) throw new Error(`filesRoots: ${key}=${dir} is not a directory`);
    out[key] = abs;
  }
  return out;
}

/** Start IMDS (http), Key Vault, ARM and Files (https) fakes plus the control API. */
export async function startFakes(opts: StartOptions = {}): Promise<Fakes> {
  const host = opts.host ?? '127.0.0.1';
  const roots = await checkRoots(opts.filesRoots ?? {});
  const ownTlsDir = !opts.tlsDir;
  const tlsDir = opts.tlsDir ?? (await mkdtemp(path.join(os.tmpdir(), 'dsvm-fakes-')));
  const servers: AnyServer[] = [];
  try {
    const tls = await makeTls(tlsDir, host);
    const state = new FakeState(opts.seed ? [opts.seed] : [], roots);
    const log = new RequestLog();
    const injector = new FailureInjector();
    const start = async (fake: FakeName, parts: Omit<ServerDeps, 'fake' | 'log' | 'injector'>, secure: boolean): Promise<string> => {
      const { server, url } = await listen({ fake, log, injector, ...parts }, host, secure ? tls : undefined);
      servers.push(server);
      return url;
    };
    const imds = await start('imds', imdsDeps(state), false);
    const keyVault = await start('keyVault', keyVaultDeps(state), true);
    const arm = await start('arm', armDeps(state), true);
    const files = await start('files', filesDeps(state), true);
    const reset = (): void => {
      state.reset();
      injector.clear();
      log.clear();
    };
    const fail = (route: string, spec: FailSpec): void => injector.add(route, spec);
    const control = await startControl(
      { seed: (s) => state.seed(s), fail, reset, requests: log.byFake, summary: () => state.summary() },
      host,
    );
    servers.push(control.server);
    const keyVaultPort = new URL(keyVault).port;
    return {
      urls: { imds, keyVault, arm, files, control: control.url },
      caFile: tls.caFile,
      ca: tls.ca,
      state: {
        seed: (s) => state.seed(s),
        storageKeys: (account) => [...state.account(account).keys],
        approvals: () => [...state.approvals],
        handles: () => [...state.handles],
        summary: () => state.summary(),
        raw: state,
      },
      requests: log.byFake,
      fail,
      reset,
      async close() {
        await Promise.all(servers.map((s) => closeServer(s)));
        if (ownTlsDir) await rm(tlsDir, { recursive: true, force: true });
      },
      httpsAgent: () => new https.Agent({ ca: tls.ca, lookup: loopbackLookup }),
      vaultUrl: (name = 'dsvm') => `https://${name}.vault.localhost:${keyVaultPort}`,
    };
  } catch (err) {
    await Promise.all(servers.map((s) => closeServer(s)));
    if (ownTlsDir) await rm(tlsDir, { recursive: true, force: true });
    throw err;
  }
}
