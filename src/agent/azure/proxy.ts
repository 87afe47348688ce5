import { isIP } from 'node:net';
import type { Agent } from 'node:http';
import { configError, transient } from '../errors.js';

/**
 * Where the agent's Azure calls go: through an HTTP(S) forward proxy or
 * direct. One decision for every call (Key Vault, ARM, Files REST, the
 * managed identity's token), made in azure/bounded.ts, the one HTTP client
 * every Azure SDK client and the sweep's ARM list are given.
 *
 * Precedence: `azure.proxy` in the config (a URL, or `none` for direct
 * whatever the environment says); else the unit's `https_proxy`, then
 * `HTTPS_PROXY` (curl's order); else direct. `no_proxy`, then `NO_PROXY`,
 * applies to either. HTTP_PROXY and ALL_PROXY are not read: every Azure
 * endpoint but IMDS is HTTPS. IMDS (the configured azure.imdsEndpoint and
 * 169.254.169.254) is always direct: it is link-local, answers only from the
 * VM itself, and a proxy in between would hand the VM's tokens to the proxy.
 */
export interface AzureProxy {
  /** The proxy; undefined: every call direct. Never holds credentials (refused). */
  url: URL | undefined;
  /** Where `url` came from: azure.proxy, https_proxy or HTTPS_PROXY; or why there is none. */
  source: string;
  /** NO_PROXY entries, matched by {@link noProxyMatches}. */
  noProxy: string[];
  /** IMDS's host:port and host (always direct). */
  imds: { host: string; port: number };
}

const IMDS_ADDRESS = '169.254.169.254';

/** What is wrong with a proxy URL (config or environment), or undefined. `key` names where it came from. */
export function proxyUrlProblem(value: string, key = 'azure.proxy'): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return `must be the proxy's URL: write e.g. http://proxy.corp:3128 (or none for direct calls)`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    return `must be an http:// or https:// URL (the scheme of the proxy itself, not of the calls): write e.g. http://proxy.corp:3128`;
  if (url.username !== '' || url.password !== '')
    // A password in a URL ends up in the config (readable by every tool that
    // reads it), in the children's environment and in any message quoting it.
    return `must not hold a user name or password: the agent keeps no secret in ${key}; let the proxy admit the VMs by address, then write the URL without "user:password@"`;
  if (url.hostname === '') return 'names no host: write e.g. http://proxy.corp:3128';
  // URL drops a scheme's default port (https://p:443 has port ''): look at what was written.
  if (url.port === '' && !/^[a-z][a-z0-9+.-]*:\/\/(?:\[[^\]]*\]|[^:/?#]*):\d+\/?$/i.test(value))
    return `names no port: write the port the proxy listens on, e.g. ${url.protocol}//${url.hostname}:3128 (an omitted port would mean ${url.protocol === 'https:' ? 443 : 80})`;
  if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '')
    return `must be the proxy's address only (scheme, host, port): write ${url.protocol}//${url.host}`;
  return undefined;
}

/** The proxy for the agent's Azure calls, from the config and the process environment (see {@link AzureProxy}). */
export function azureProxy(azure: { proxy?: string | undefined; imdsEndpoint: string }, env: NodeJS.ProcessEnv = process.env): AzureProxy {
  const imdsUrl = new URL(azure.imdsEndpoint);
  const imds = { host: bareHost(imdsUrl.hostname), port: portOf(imdsUrl) };
  const noProxyKey = env.no_proxy !== undefined ? 'no_proxy' : 'NO_PROXY';
  const noProxy = (env[noProxyKey] ?? '')
    .split(/[\s,]+/)
    .map((e) => e.trim())
    .filter((e) => e !== '');
  const envKey = env.https_proxy ? 'https_proxy' : env.HTTPS_PROXY ? 'HTTPS_PROXY' : undefined;
  const [value, source] =
    azure.proxy !== undefined ? [azure.proxy, 'azure.proxy'] : envKey ? [env[envKey] ?? '', envKey] : ['none', 'no proxy configured'];
  if (value === 'none') return { url: undefined, source: source === 'azure.proxy' ? 'azure.proxy: none' : source, noProxy, imds };
  const problem = proxyUrlProblem(value, source);
  if (problem)
    // The value is never quoted: it may hold a password.
    throw configError(`${source} ${problem}`, {
      fix:
        source === 'azure.proxy'
          ? 'correct azure.proxy in the config (dsvm-agent config check names the rule)'
          : `correct ${source} in the unit's environment, or set azure.proxy (a URL, or none) in the config, which takes precedence`,
      reason: 'proxy-config',
    });
  return { url: new URL(value), source, noProxy, imds };
}

/** The proxy a call to `target` goes through, or undefined for a direct call. */
export function proxyFor(target: URL | string, p: AzureProxy): URL | undefined {
  if (!p.url) return undefined;
  const url = typeof target === 'string' ? new URL(target) : target;
  const host = bareHost(url.hostname);
  const port = portOf(url);
  if (host === IMDS_ADDRESS || (host === p.imds.host && port === p.imds.port)) return undefined;
  return noProxyMatches(host, port, p.noProxy) ? undefined : p.url;
}

/**
 * Preflight's check of the proxy: when a call to one of `targets` would go
 * through a proxy, that the proxy accepts a TCP connection. Without it the
 * first failure would read as the vault being unreachable, after the SDKs'
 * retries. `probe` is preflight's own port probe.
 */
export async function checkProxyReachable(
  p: AzureProxy,
  targets: readonly string[],
  probe: (host: string, port: number, timeoutMs: number) => Promise<void>,
  timeoutMs: number,
): Promise<void> {
  const routes = targets.map((target) => ({ target, via: proxyFor(target, p) }));
  const { target, via } = routes.find((r) => r.via !== undefined) ?? {};
  if (!target || !via) return;
  const port = portOf(via);
  try {
    await probe(bareHost(via.hostname), port, timeoutMs);
  } catch (err) {
    throw transient(
      `proxy unreachable: ${via.hostname}:${port} (${p.source}), through which ${new URL(target).host} is called, does not accept connections: ${(err as Error)?.message ?? String(err)}`,
      {
        reason: 'proxy-unreachable',
        fix: `check that the proxy runs and that this VM may reach TCP ${port} on it (NSG, firewall); or correct ${p.source}${p.source === 'azure.proxy' ? '' : ', or set azure.proxy (a URL, or none), which takes precedence'}; or add the host to NO_PROXY`,
      },
    );
  }
}

/** `host:port` of the proxy, for status and logs (never credentials: there are none, see proxyUrlProblem). */
export function proxyDisplay(p: AzureProxy): string {
  if (!p.url) return `direct (${p.source})`;
  const bypass = p.noProxy.length > 0 ? `; NO_PROXY: ${p.noProxy.join(',')}` : '';
  return `${p.url.protocol}//${p.url.hostname}:${portOf(p.url)} (${p.source}; IMDS direct${bypass})`;
}

/** The route as status and health show it (proxyDisplay); a proxy the environment sets wrongly is shown refused, never quoted. */
export function azureRouteView(azure: { proxy?: string | undefined; imdsEndpoint: string }, env: NodeJS.ProcessEnv = process.env): string {
  try {
    return proxyDisplay(azureProxy(azure, env));
  } catch (err) {
    return `refused: ${(err as Error).message}`;
  }
}

/**
 * Whether `host`:`port` bypasses the proxy under NO_PROXY `entries`, as curl
 * decides (curl's --noproxy documentation and lib/noproxy.c, curl 8):
 * - `*` alone matches every host;
 * - a name matches itself and every name below it: `example.com` and
 *   `.example.com` both match `example.com` and `www.example.com`, not
 *   `notexample.com` (a leading dot is dropped; case and a trailing dot of
 *   the host are ignored);
 * - an IP address matches only that address, or, with `/bits`, the network
 *   (IPv4; curl 7.86's CIDR notation); never a suffix of another address;
 * - an IPv6 address may be written in brackets.
 * One addition curl does not make: `host:port` (as Go's and Python's
 * NO_PROXY rules allow) matches that host on that port only; a bare host
 * matches every port, as in curl.
 */
export function noProxyMatches(host: string, port: number, entries: readonly string[]): boolean {
  const name = bareHost(host).toLowerCase().replace(/\.$/, '');
  for (const item of entries) {
    const raw = item.trim();
    if (raw === '*') return true;
    const entry = splitPort(raw.toLowerCase());
    if (!entry || entry.host === '') continue;
    if (entry.port !== undefined && entry.port !== port) continue;
    if (isIP(name) !== 0) {
      if (ipMatches(name, entry.host)) return true;
      continue;
    }
    const domain = entry.host.replace(/^\./, '').replace(/\.$/, '');
    if (domain === '') continue;
    if (name === domain || name.endsWith(`.${domain}`)) return true;
  }
  return false;
}

/** `host`, `host:port`, `[v6]`, `[v6]:port`, `v6` (unbracketed, no port), `a.b.c.d/bits`. */
function splitPort(entry: string): { host: string; port?: number } | undefined {
  if (entry.startsWith('[')) {
    const end = entry.indexOf(']');
    if (end < 0) return undefined;
    const rest = entry.slice(end + 1);
    const host = entry.slice(1, end);
    if (rest === '') return { host };
    const port = /^:(\d{1,5})$/.exec(rest)?.[1];
    return port === undefined ? undefined : { host, port: Number(port) };
  }
  // More than one colon and no brackets: an IPv6 address without a port.
  if (entry.indexOf(':') !== entry.lastIndexOf(':')) return { host: entry };
  const m = /^(.*):(\d{1,5})$/.exec(entry);
  return m ? { host: m[1] ?? '', port: Number(m[2]) } : { host: entry };
}

function ipMatches(address: string, entry: string): boolean {
  const [net, bitsText] = entry.split('/');
  if (net === undefined) return false;
  if (bitsText === undefined) return isIP(net) !== 0 && normalizeIp(net) === normalizeIp(address);
  const bits = Number(bitsText);
  if (isIP(net) !== 4 || isIP(address) !== 4 || !Number.isInteger(bits) || bits < 0 || bits > 32) return false;
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return (ipv4(net) & mask) >>> 0 === (ipv4(address) & mask) >>> 0;
}

function ipv4(a: string): number {
  return a.split('.').reduce((n, part) => ((n << 8) | Number(part)) >>> 0, 0);
}

function normalizeIp(a: string): string {
  // new URL canonicalises IPv6 (::1 vs 0:0:0:0:0:0:0:1); IPv4 is already canonical here.
  return isIP(a) === 6 ? new URL(`http://[${a}]/`).hostname.slice(1, -1) : a;
}

/** URL.hostname keeps IPv6 brackets; entries and comparisons use the bare address. */
function bareHost(h: string): string {
  return h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h;
}

function portOf(url: URL): number {
  if (url.port !== '') return Number(url.port);
  return url.protocol === 'https:' ? 443 : 80;
}

/** The proxy agent classes, loaded with the SDKs (never on the login path). */
export interface ProxyAgents {
  /** The agent for calls to `target` through `proxy`: CONNECT tunnels for https targets, absolute URIs for http. */
  agentFor(proxy: URL, target: URL): Agent;
  /** Whether `agent` is a proxy agent (the SDK's own, from its environment, or ours). */
  isProxyAgent(agent: unknown): boolean;
}

let loaded: Promise<ProxyAgents> | undefined;

/**
 * The proxy agents of https-proxy-agent and http-proxy-agent, the packages
 * the Azure SDK's own proxy policy uses (no CONNECT code of ours), one per
 * proxy and target scheme per process, so tunnels' sockets are reused.
 */
export function proxyAgents(): Promise<ProxyAgents> {
  loaded ??= Promise.all([import('https-proxy-agent'), import('http-proxy-agent')]).then(([{ HttpsProxyAgent }, { HttpProxyAgent }]) => {
    const cache = new Map<string, Agent>();
    return {
      agentFor(proxy: URL, target: URL): Agent {
        const key = `${target.protocol} ${proxy.href}`;
        let agent = cache.get(key);
        if (!agent) {
          agent =
            target.protocol === 'https:' ? new HttpsProxyAgent(proxy, { keepAlive: true }) : new HttpProxyAgent(proxy, { keepAlive: true });
          cache.set(key, agent);
        }
        return agent;
      },
      isProxyAgent: (agent: unknown): boolean => agent instanceof HttpsProxyAgent || agent instanceof HttpProxyAgent,
    };
  });
  return loaded;
}
