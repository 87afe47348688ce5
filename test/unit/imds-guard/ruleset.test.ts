// The IMDS guard's rule set: rendered text, and the table parsed from real
// `nft -j list table inet dsvm_agent` output (nftables 1.0.6, captured in a
// private network namespace: test/fixtures/imds-guard/).
import t from 'tap';
import { readFileSync } from 'node:fs';
import {
  desiredTable,
  guardDifferences,
  parseGuardTable,
  renderGuardScript,
  type GuardSpec,
} from '../../../src/tasks/imds-guard/ruleset.js';

const fixture = (name: string): string => readFileSync(`test/fixtures/imds-guard/${name}`, 'utf8');
/** The spec the fixtures were made from (test/fixtures/imds-guard/README.md). */
const FIXTURE_SPEC: GuardSpec = { address: '169.254.169.254', port: 80, gids: [1234, 1800000513] };

t.test('renderGuardScript', async (t) => {
  const cases: { name: string; spec: GuardSpec; has: RegExp[]; lacks?: RegExp[] }[] = [
    {
      name: 'root only',
      spec: { address: '169.254.169.254', port: 80, gids: [] },
      has: [/meta skuid 0 accept/, /tcp dport 80 tcp flags & \(syn \| ack\) == syn reject with tcp reset/],
      lacks: [/skgid/],
    },
    {
      name: 'two groups, each its own accept before the reject',
      spec: FIXTURE_SPEC,
      has: [/skgid 1234 accept\n.*skgid 1800000513 accept\n.*reject with tcp reset/],
    },
    {
      name: 'a lab endpoint on loopback and another port',
      spec: { address: '127.0.0.1', port: 41234, gids: [] },
      has: [/ip daddr 127\.0\.0\.1 tcp dport 41234 /],
    },
    {
      name: 'atomic replace: create, delete, create in one script',
      spec: FIXTURE_SPEC,
      has: [/^table inet dsvm_agent \{\}\ndelete table inet dsvm_agent\ntable inet dsvm_agent \{\n/m],
      lacks: [/flush ruleset/],
    },
    {
      name: 'output hook, filter priority, accept policy (other traffic untouched)',
      spec: FIXTURE_SPEC,
      has: [/type filter hook output priority filter; policy accept;/],
    },
  ];
  for (const c of cases) {
    const text = renderGuardScript(c.spec);
    for (const re of c.has) t.match(text, re, `${c.name}: has ${re}`);
    for (const re of c.lacks ?? []) t.notMatch(text, re, `${c.name}: lacks ${re}`);
  }
});

t.test('renderGuardScript refuses what it cannot express', async (t) => {
  const bad: { name: string; spec: GuardSpec }[] = [
    { name: 'a host name', spec: { address: 'metadata.azure.internal', port: 80, gids: [] } },
    { name: 'an injected rule', spec: { address: '169.254.169.254 accept\ntable ip x {}', port: 80, gids: [] } },
    { name: 'IPv6', spec: { address: 'fd00:ec2::254', port: 80, gids: [] } },
    { name: 'port 0', spec: { address: '169.254.169.254', port: 0, gids: [] } },
    { name: 'negative gid', spec: { address: '169.254.169.254', port: 80, gids: [-1] } },
    { name: 'fractional gid', spec: { address: '169.254.169.254', port: 80, gids: [1.5] } },
  ];
  for (const c of bad) t.throws(() => renderGuardScript(c.spec), `${c.name} is refused`);
});

t.test('parseGuardTable: the table nft lists after loading the rendered script', async (t) => {
  const table = parseGuardTable(fixture('nft-list-guard.json'));
  t.same(table, desiredTable(FIXTURE_SPEC), 'parsed table equals the wanted one (handles, metainfo ignored)');
  t.same(guardDifferences(table, desiredTable(FIXTURE_SPEC)), [], 'no differences');
});

t.test('parseGuardTable: nftables 1.1 (Debian 13) lists the flags mask as {"|": [...]}: the same table', async (t) => {
  // Captured in the Debian 13 VM test (nftables 1.1.3): root only, the IMDS fake at 10.77.0.5:41957.
  const spec: GuardSpec = { address: '10.77.0.5', port: 41957, gids: [] };
  const table = parseGuardTable(fixture('nft-1.1.3-list-guard.json'));
  t.same(guardDifferences(table, desiredTable(spec)), [], 'no differences');
  t.ok(
    table.rules.every((r) => r.synOnly && r.foreign.length === 0),
    'every rule matches SYN only, nothing foreign',
  );
});

t.test('guardDifferences: what plan says for each kind of drift', async (t) => {
  const listed = parseGuardTable(fixture('nft-list-guard.json'));
  const cases: { name: string; actual: ReturnType<typeof parseGuardTable>; wanted: GuardSpec; says: RegExp[] }[] = [
    {
      name: 'a rule deleted and a foreign one added by hand',
      actual: parseGuardTable(fixture('nft-list-tampered.json')),
      wanted: FIXTURE_SPEC,
      says: [/missing: .*skgid 1800000513/, /unexpected: .*skuid 1000/],
    },
    {
      name: 'a group added to the config',
      actual: listed,
      wanted: { ...FIXTURE_SPEC, gids: [1234, 1800000513, 4000] },
      says: [/missing: .*skgid 4000/],
    },
    { name: 'the endpoint moved', actual: listed, wanted: { ...FIXTURE_SPEC, address: '127.0.0.1' }, says: [/ip daddr 127\.0\.0\.1/] },
    {
      name: 'the chain hooks input instead of output',
      actual: { ...listed, chains: [{ name: 'imds_output', type: 'filter', hook: 'input', prio: 0, policy: 'accept' }] },
      wanted: FIXTURE_SPEC,
      says: [/chains are .*hook input.*want .*hook output/],
    },
    {
      name: 'the same rules in another order (the reject first would refuse root)',
      actual: { ...listed, rules: [...listed.rules].reverse() },
      wanted: FIXTURE_SPEC,
      says: [/out of order/],
    },
  ];
  for (const c of cases) {
    const diff = guardDifferences(c.actual, desiredTable(c.wanted)).join('\n');
    t.not(diff, '', `${c.name}: differs`);
    for (const re of c.says) t.match(diff, re, `${c.name}: says ${re}`);
  }
});

t.test('parseGuardTable refuses output that is not nft JSON', async (t) => {
  t.throws(() => parseGuardTable('table inet dsvm_agent {'), 'text output');
  t.throws(() => parseGuardTable('{"rules": []}'), 'JSON without nftables');
});
