/**
 * The nftables rule set that keeps the VM's managed identity to root and the
 * allowed groups: pure rendering and parsing, so unit tests cover them with
 * captured `nft -j` output and the task only runs `nft`.
 *
 * It lives in a table of its own (`inet dsvm_agent`): the admin's tables,
 * ufw's, Docker's and firewalld's are never read or changed, and removal is
 * one `delete table`. A reject in any base chain of the output hook is final
 * whatever other chains accept, so the guard holds next to those firewalls.
 */

export const GUARD_FAMILY = 'inet';
export const GUARD_TABLE = 'dsvm_agent';
export const GUARD_CHAIN = 'imds_output';

/** What the guard must let through: root always, and these gids. */
export interface GuardSpec {
  /** IPv4 address of the metadata endpoint (azure.imdsEndpoint). */
  address: string;
  port: number;
  /** Allowed effective gids, sorted, without duplicates. */
  gids: number[];
}

/** One rule as the agent compares it: the few matches it renders, in any order, and its verdict. */
export interface GuardRule {
  daddr?: string;
  dport?: number;
  /** Matches only connection attempts (SYN without ACK). */
  synOnly: boolean;
  skuid?: number;
  skgid?: number;
  verdict: string;
  /** Expressions the agent never writes: someone edited the table. */
  foreign: string[];
}

export interface GuardChain {
  name: string;
  type?: string;
  hook?: string;
  prio?: number;
  policy?: string;
}

/** The table as listed by `nft -j list table inet dsvm_agent`. */
export interface GuardTable {
  chains: GuardChain[];
  /** Rules in chain order, each with the chain it sits in. */
  rules: (GuardRule & { chain: string })[];
}

/** The table the spec asks for, in the shape {@link parseGuardTable} returns. */
export function desiredTable(spec: GuardSpec): GuardTable {
  const to = { daddr: spec.address, dport: spec.port, synOnly: true, foreign: [] as string[] };
  const rules: GuardTable['rules'] = [
    { chain: GUARD_CHAIN, ...to, skuid: 0, verdict: 'accept', foreign: [] },
    ...spec.gids.map((gid) => ({ chain: GUARD_CHAIN, ...to, skgid: gid, verdict: 'accept', foreign: [] })),
    { chain: GUARD_CHAIN, ...to, verdict: 'reject tcp reset', foreign: [] },
  ];
  return { chains: [{ name: GUARD_CHAIN, type: 'filter', hook: 'output', prio: 0, policy: 'accept' }], rules };
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

/**
 * The script for `nft -f`. One transaction: the empty `table` line makes
 * the `delete` valid when the table does not exist yet, so a re-run replaces
 * the table atomically and no moment exists without the guard or with two.
 * Only connection attempts are matched (SYN, no ACK): that alone decides who
 * gets a connection, and packets the kernel sends without a full socket
 * (time-wait ACKs of root's closed connections) carry no uid and must not
 * meet the reject. A TCP reset fails the client at once instead of hanging
 * it until its timeout, so a notebook sees "connection refused".
 */
export function renderGuardScript(spec: GuardSpec): string {
  // Defence in depth: the config validates these, but nothing else may reach the script.
  if (!IPV4.test(spec.address)) throw new Error(`imds guard: "${spec.address}" is not an IPv4 address`);
  if (!Number.isInteger(spec.port) || spec.port < 1 || spec.port > 65535) throw new Error(`imds guard: bad port ${spec.port}`);
  for (const gid of spec.gids) if (!Number.isInteger(gid) || gid < 0 || gid > 4294967294) throw new Error(`imds guard: bad gid ${gid}`);
  const match = `ip daddr ${spec.address} tcp dport ${spec.port} tcp flags & (syn | ack) == syn`;
  return [
    '# Written by dsvm-agent: only root and azure.imdsAccess.allowGroups reach the Instance Metadata Service.',
    `table ${GUARD_FAMILY} ${GUARD_TABLE} {}`,
    `delete table ${GUARD_FAMILY} ${GUARD_TABLE}`,
    `table ${GUARD_FAMILY} ${GUARD_TABLE} {`,
    `\tchain ${GUARD_CHAIN} {`,
    '\t\ttype filter hook output priority filter; policy accept;',
    `\t\t${match} meta skuid 0 accept`,
    ...spec.gids.map((gid) => `\t\t${match} meta skgid ${gid} accept`),
    `\t\t${match} reject with tcp reset`,
    '\t}',
    '}',
    '',
  ].join('\n');
}

type Json = unknown;
const isObj = (v: Json): v is Record<string, Json> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** One `match` expression folded into the rule; anything unknown is recorded as foreign. */
function foldMatch(rule: GuardRule, m: Record<string, Json>): void {
  const left = m.left;
  const right = m.right;
  const text = JSON.stringify(m);
  if (m.op !== '==') return void rule.foreign.push(text);
  if (isObj(left) && isObj(left.payload)) {
    const { protocol, field } = left.payload;
    if (protocol === 'ip' && field === 'daddr' && typeof right === 'string') return void (rule.daddr = right);
    if (protocol === 'tcp' && field === 'dport' && typeof right === 'number') return void (rule.dport = right);
  }
  if (isObj(left) && isObj(left.meta) && typeof right === 'number') {
    if (left.meta.key === 'skuid') return void (rule.skuid = right);
    if (left.meta.key === 'skgid') return void (rule.skgid = right);
  }
  // tcp flags & (syn | ack) == syn. nftables 1.0 (Debian 12) lists the mask
  // as a list, ["syn", "ack"]; 1.1 (Debian 13) as {"|": ["syn", "ack"]}.
  if (isObj(left) && Array.isArray(left['&']) && right === 'syn') {
    const [flags, mask] = left['&'] as Json[];
    const bits = Array.isArray(mask) ? mask : isObj(mask) && Array.isArray(mask['|']) ? mask['|'] : [];
    const maskSet = [...(bits as Json[])].map(String).sort().join(',');
    if (
      isObj(flags) &&
      isObj(flags.payload) &&
      flags.payload.protocol === 'tcp' &&
      flags.payload.field === 'flags' &&
      maskSet === 'ack,syn'
    )
      return void (rule.synOnly = true);
  }
  rule.foreign.push(text);
}

function parseRule(expr: Json[]): GuardRule {
  const rule: GuardRule = { synOnly: false, verdict: '', foreign: [] };
  for (const e of expr) {
    if (!isObj(e)) {
      rule.foreign.push(JSON.stringify(e));
      continue;
    }
    if (isObj(e.match)) foldMatch(rule, e.match);
    else if ('accept' in e) rule.verdict = 'accept';
    else if ('drop' in e) rule.verdict = 'drop';
    else if (isObj(e.reject)) rule.verdict = `reject ${String(e.reject.type ?? '')}`.trim();
    else if ('reject' in e) rule.verdict = 'reject';
    else rule.foreign.push(JSON.stringify(e));
  }
  return rule;
}

/**
 * Parse `nft -j list table inet dsvm_agent`. Throws on output that is not
 * nft's JSON (the caller reports it); handles, comments and metainfo are
 * ignored, so a table compares equal to the one rendered however often it
 * was replaced.
 */
export function parseGuardTable(stdout: string): GuardTable {
  const doc = JSON.parse(stdout) as Json;
  if (!isObj(doc) || !Array.isArray(doc.nftables)) throw new Error('not nft JSON: no "nftables" list');
  const table: GuardTable = { chains: [], rules: [] };
  for (const item of doc.nftables as Json[]) {
    if (!isObj(item)) continue;
    if (isObj(item.chain)) {
      const c = item.chain;
      table.chains.push({
        name: String(c.name),
        ...(typeof c.type === 'string' ? { type: c.type } : {}),
        ...(typeof c.hook === 'string' ? { hook: c.hook } : {}),
        ...(typeof c.prio === 'number' ? { prio: c.prio } : {}),
        ...(typeof c.policy === 'string' ? { policy: c.policy } : {}),
      });
    } else if (isObj(item.rule)) {
      const r = item.rule;
      table.rules.push({ chain: String(r.chain), ...parseRule(Array.isArray(r.expr) ? r.expr : []) });
    }
  }
  return table;
}

/** What differs between the listed table and the wanted one, in words for `plan`; empty when equal. */
export function guardDifferences(actual: GuardTable, wanted: GuardTable): string[] {
  const out: string[] = [];
  const chainKey = (c: GuardChain): string =>
    `${c.name} (${c.type ?? '?'} hook ${c.hook ?? '?'} priority ${c.prio ?? '?'} policy ${c.policy ?? '?'})`;
  const ruleKey = (r: GuardTable['rules'][number]): string =>
    [
      r.chain,
      r.daddr && `ip daddr ${r.daddr}`,
      r.dport !== undefined && `tcp dport ${r.dport}`,
      r.synOnly && 'syn',
      r.skuid !== undefined && `skuid ${r.skuid}`,
      r.skgid !== undefined && `skgid ${r.skgid}`,
      ...r.foreign,
      r.verdict || 'no verdict',
    ]
      .filter(Boolean)
      .join(' ');
  const a = actual.chains.map(chainKey).join('; ');
  const w = wanted.chains.map(chainKey).join('; ');
  if (a !== w) out.push(`chains are [${a}], want [${w}]`);
  const ar = actual.rules.map(ruleKey);
  const wr = wanted.rules.map(ruleKey);
  if (ar.join('\n') !== wr.join('\n')) {
    const missing = wr.filter((r) => !ar.includes(r));
    const extra = ar.filter((r) => !wr.includes(r));
    out.push(
      missing.length || extra.length
        ? `rules differ (missing: ${missing.join(' | ') || 'none'}; unexpected: ${extra.join(' | ') || 'none'})`
        : 'rules are out of order',
    );
  }
  return out;
}
