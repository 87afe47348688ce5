import { Resolver } from 'node:dns/promises';
import { permanent, transient, type AgentError } from './errors.js';

/**
 * Finding the domain's controllers in DNS, the one way every part of the
 * agent does it: preflight before the join, the clock check, the scale-in
 * clean-up (its DNS record) and the sweep. One resolver setting, one order
 * and one classification of failures, so a DC that preflight picks is the
 * one the others talk to, and a slow DNS server is waited for equally long.
 */

export interface SrvTarget {
  name: string;
  port: number;
  priority: number;
  weight: number;
}

/**
 * A fresh resolver per lookup reads /etc/resolv.conf as it is now: at boot the
 * DHCP-provided DNS may have arrived after the agent started. Three tries
 * (c-ares lengthens each round: about 2, 4 and 8 s): a DC busy with a burst of
 * joins answers its own SRV records late, not never (seen in the lab with
 * five VMs joining at once, where two tries of 3 s timed out); an unreachable
 * DNS server still fails within about 14 s, and callers retry with backoff.
 */
export function systemResolver(): Resolver {
  return new Resolver({ timeout: 2000, tries: 3 });
}

/** The resolver's error code (ENOTFOUND, ETIMEOUT, ECONNREFUSED...), else the message. */
export const dnsCode = (err: unknown): string => String((err as NodeJS.ErrnoException)?.code ?? (err as Error)?.message ?? err);

/**
 * Order SRV targets by priority, then higher weight first (RFC 2782 without
 * randomness: the result is stable), then by name in code-unit order: host
 * names are ASCII, and localeCompare would map ICU's collation data into the
 * daemon (~3 MB resident for the life of the process) for no better order.
 */
export function orderSrv(records: readonly SrvTarget[]): SrvTarget[] {
  return [...records].sort((a, b) => a.priority - b.priority || b.weight - a.weight || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * Classify a failed SRV lookup. NXDOMAIN means the DNS server the VM uses has
 * never heard of this domain (wrong name, or the VNet's DNS is not the DCs):
 * waiting does not fix it. SERVFAIL, timeouts and refused queries are what a
 * DNS server that is still starting (or a DC that is still booting or busy)
 * looks like. `servers` names the DNS servers asked, when known.
 */
export function classifySrvError(record: string, domain: string, err: unknown, servers: readonly string[] = []): AgentError {
  const code = dnsCode(err);
  if (code === 'ENOTFOUND') {
    return permanent(`DNS: ${record} does not exist (NXDOMAIN): "${domain}" is not an AD domain this VM's DNS server knows`, {
      reason: 'dns-domain-unknown',
      fix: `check domain.name (the AD DNS domain, e.g. contoso.com, not the NetBIOS name) and that the VNet's DNS servers are the domain controllers`,
    });
  }
  if (code === 'ENODATA') {
    return permanent(`DNS: ${domain} exists but has no ${record} record`, {
      reason: 'dns-srv-missing',
      fix: `point the VNet's DNS servers at the domain controllers (a public or Azure DNS zone of the same name has no AD SRV records)`,
    });
  }
  const from = servers.length ? ` from ${servers.join(', ')}` : '';
  return transient(`DNS: looking up ${record} failed (${code}${from}): the DNS server is not answering yet`, {
    reason: 'dns-not-ready',
    fix: 'check that the VNet DNS servers (the domain controllers) are up and reachable on port 53',
  });
}

/** Looks up SRV records; injected so tests replace DNS without globals. */
export type ResolveSrv = (name: string) => Promise<SrvTarget[]>;

/** SRV lookups through `resolver`, failures carrying the servers asked (for the message). */
export const srvThrough =
  (resolver: Resolver): ResolveSrv =>
  (name) =>
    resolver.resolveSrv(name).catch((err: unknown) => {
      throw Object.assign(err as Error, { servers: resolver.getServers() });
    });

/** The system resolver's SRV lookup, a fresh resolver each time. */
export const systemResolveSrv: ResolveSrv = (name) => srvThrough(systemResolver())(name);

/**
 * The targets of `record` in `domain`, in orderSrv's order; throws the
 * classified failure (an empty answer counts as no record).
 */
export async function lookupSrv(domain: string, record: string, resolveSrv: ResolveSrv = systemResolveSrv): Promise<SrvTarget[]> {
  let targets: SrvTarget[];
  try {
    targets = orderSrv(await resolveSrv(record));
  } catch (err) {
    throw classifySrvError(record, domain, err, (err as { servers?: string[] })?.servers);
  }
  if (targets.length === 0) throw classifySrvError(record, domain, Object.assign(new Error('empty'), { code: 'ENODATA' }));
  return targets;
}

/** The domain's LDAP SRV record name (how DCs are located). */
export const ldapSrvRecord = (domain: string): string => `_ldap._tcp.${domain.toLowerCase()}`;

/** The first domain controller of `domain` in SRV order (no port probe). */
export async function firstDomainController(domain: string, resolveSrv: ResolveSrv = systemResolveSrv): Promise<string> {
  return (await lookupSrv(domain, ldapSrvRecord(domain), resolveSrv))[0]!.name;
}
