/**
 * Walks every key of the config schema (through its JSON Schema, the form
 * editors see) and feeds each one wrong values: a wrong type, a fraction, a
 * number out of range, a string of the wrong form, a value outside an enum.
 * Every answer must name that exact key, say how to fix it in our words
 * (never zod's own), and show the value, except where it could be a secret.
 */
import t, { type Test } from 'tap';
import { z } from 'zod';
import { ConfigInvalid, validateConfig, type ConfigIssue } from '../../../src/agent/config.js';
import { configSchema } from '../../../src/agent/config-schema.js';

interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  additionalProperties?: JsonSchema | boolean;
  propertyNames?: JsonSchema;
  anyOf?: JsonSchema[];
  items?: JsonSchema;
  enum?: unknown[];
  const?: unknown;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
}

/**
 * A key to try: its path as segments, its schema, whether a secret reference
 * goes there, and for a key inside a reference, how long the reference's path is.
 */
interface Leaf {
  path: (string | number)[];
  schema: JsonSchema;
  reference: boolean;
  inReference?: number;
}

const isReference = (s: JsonSchema): boolean =>
  Array.isArray(s.anyOf) && s.anyOf.every((o) => o.type === 'object' && o.properties !== undefined);

/** Every leaf key; a reference is a leaf itself and also holds the leaves of each of its forms. */
function leaves(s: JsonSchema, path: (string | number)[] = []): Leaf[] {
  if (isReference(s))
    return [
      { path, schema: s, reference: true },
      ...(s.anyOf ?? []).flatMap((o) => leaves(o, path)).map((l) => ({ ...l, inReference: l.inReference ?? path.length })),
    ];
  if (s.type === 'object' && s.properties) return Object.entries(s.properties).flatMap(([k, v]) => leaves(v, [...path, k]));
  if (s.type === 'object' && s.propertyNames?.enum && typeof s.additionalProperties === 'object') {
    const id = String(s.propertyNames.enum[0]);
    return leaves(s.additionalProperties, [...path, id]);
  }
  const own: Leaf = { path, schema: s, reference: false };
  if (s.type === 'array' && s.items) return [own, ...leaves(s.items, [...path, 0])];
  return [own];
}

/** A config with every key set to a valid value, so that each leaf's parents exist. */
const full = {
  identity: { clientId: '11111111-1111-1111-1111-111111111111' },
  azure: {
    imdsEndpoint: 'http://127.0.0.1:9',
    managementEndpoint: 'https://127.0.0.1:9',
    imdsAccess: { restrict: 'auto', allowGroups: ['dsvm-identity'] },
  },
  domain: {
    name: 'contoso.com',
    joinUser: 'dsvm-join',
    joinPassword: { keyVault: { vaultUrl: 'https://kv.vault.azure.net', name: 'dsvm-join', version: '0123456789abcdef0123456789abcdef' } },
    computerOu: 'OU=DSVM,DC=contoso,DC=com',
    computerName: 'auto',
    allowGroups: ['dsvm-users'],
    sudoGroups: ['admins'],
    fullyQualifiedNames: false,
    homeTemplate: '/home/%u',
    shell: '/bin/bash',
    idMapping: 'posix',
    denyGroups: ['contractors'],
    dnsUpdate: true,
    sssdOptions: { ldap_referrals: false },
  },
  share: {
    type: 'smb',
    account: 'contosofiles',
    name: 'workspace',
    endpointSuffix: 'core.windows.net',
    host: 'contosofiles.file.core.windows.net',
    filesEndpoint: 'https://contosofiles.file.core.windows.net',
    mountPoint: '/data/workspace',
    auth: 'key',
    key: { armListKeys: { subscriptionId: '00000000-0000-0000-0000-000000000000', resourceGroup: 'rg', keyName: 'key1' } },
    uid: 0,
    gid: 'dsvm-users',
    dirMode: '0775',
    fileMode: '0664',
    options: ['nobrl'],
  },
  workspace: {
    root: '/data/workspace',
    notebooks: 'notebooks',
    homeLink: 'notebooks/remote',
    minUid: 1000,
    loginTimeoutMs: 3000,
    createHome: true,
  },
  health: {
    listen: '127.0.0.1:8642',
    allowNonLoopback: false,
    initializingGraceSec: 1800,
    unhealthyOn: ['sssd'],
    identityProbe: 'alice',
    checks: { 'domain-trust': { schedule: '0 */5 * * * *', enabled: true } },
    metricsTextfile: '/var/lib/prometheus/node-exporter/dsvm-agent.prom',
  },
  repair: { enabled: true, maxAttempts: 3, windowSec: 3600 },
  scheduledEvents: { enabled: true, pollSec: 10 },
  logging: { level: 'info' },
};

/** A valid value for each form of a reference, keyed by the form's own key. */
const referenceForms: Record<string, unknown> = {
  file: { file: '/etc/dsvm-agent/secret' },
  keyVault: full.domain.joinPassword,
  armListKeys: full.share.key,
};

/** `full` with one key set to `value`; inside a reference, the form holding that key is used. */
function withValue(leaf: Leaf, value: unknown): unknown {
  const cfg = structuredClone(full) as Record<string | number, unknown>;
  const parentOf = (path: (string | number)[]) => {
    let cur = cfg;
    for (const seg of path) cur = (cur[seg] ??= {}) as Record<string | number, unknown>;
    return cur;
  };
  if (leaf.inReference !== undefined) {
    const at = leaf.path.slice(0, leaf.inReference);
    const form = leaf.path[leaf.inReference] as string;
    parentOf(at.slice(0, -1))[at[at.length - 1] as string] = structuredClone(referenceForms[form]);
  }
  parentOf(leaf.path.slice(0, -1))[leaf.path[leaf.path.length - 1] as string | number] = value;
  return cfg;
}

function issuesFor(cfg: unknown): ConfigIssue[] {
  try {
    validateConfig(cfg, 'test');
  } catch (err) {
    if (err instanceof ConfigInvalid) return err.issues;
    throw err;
  }
  return [];
}

const dotted = (path: (string | number)[]) =>
  path.reduce<string>((out, p) => (typeof p === 'number' ? `${out}[${p}]` : out === '' ? p : `${out}.${p}`), '');

function acceptedTypes(s: JsonSchema): Set<string> {
  const out = new Set<string>();
  const add = (x: JsonSchema) => {
    for (const ty of [x.type ?? []].flat()) out.add(ty === 'integer' ? 'number' : ty);
    if (x.const !== undefined) out.add(typeof x.const);
    for (const v of x.enum ?? []) out.add(typeof v);
    x.anyOf?.forEach(add);
  };
  add(s);
  return out;
}

const wrongValues: { type: string; value: unknown }[] = [
  { type: 'number', value: 12345 },
  { type: 'string', value: 'some text' },
  { type: 'boolean', value: true },
  { type: 'array', value: ['x'] },
  { type: 'object', value: { x: 1 } },
];

/** Every message ends in what to do: "<problem>: <fix>", the fix starting with a verb. */
const FIX = /: (add|write|use|remove|rename|drop|raise|lower|shorten|lengthen|pick|choose|copy|keep|correct|set|round)\b/;
/** Zod's own wording, which tells an admin neither the meaning nor the fix. */
const ZOD_WORDING = /Invalid input|Invalid option|Invalid string|Too small|Too big|expected \w+, received|Unrecognized key/i;

const jsonSchema = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
const all = leaves(jsonSchema);

t.test('the walk finds every key', async (t) => {
  const paths = all.map((l) => dotted(l.path));
  t.ok(paths.length >= 60, `${paths.length} keys`);
  for (const p of [
    'domain.joinPassword.keyVault.version',
    'share.key.armListKeys.keyName',
    'domain.allowGroups[0]',
    'health.checks.domain-trust.enabled',
  ])
    t.ok(paths.includes(p), p);
  t.same(issuesFor(full), [], 'the full config itself is valid');
});

/** One wrong value at one key: the issue is at that key, worded by us, with a fix and the value. */
function expectIssue(t: Test, leaf: Leaf, value: unknown, what: string): void {
  const path = dotted(leaf.path);
  const issues = issuesFor(withValue(leaf, value));
  const hit = issues.find((i) => i.path === path);
  if (!t.ok(hit, `${path} = ${JSON.stringify(value)} (${what}): reported at its own path (got ${JSON.stringify(issues)})`)) return;
  t.match(hit!.message, FIX, `${path} (${what}): says how to fix it: ${hit!.message}`);
  t.notMatch(hit!.message, ZOD_WORDING, `${path} (${what}): in our words`);
  t.equal(
    hit!.got,
    leaf.reference ? undefined : JSON.stringify(value),
    `${path} (${what}): ${leaf.reference ? 'value hidden' : 'value shown'}`,
  );
}

t.test('a value of the wrong type, at any key', async (t) => {
  for (const leaf of all) {
    const accepted = acceptedTypes(leaf.schema);
    const wrong = wrongValues.find((w) => !accepted.has(w.type));
    if (!t.ok(wrong, `${dotted(leaf.path)}: some type is wrong here`)) continue;
    // An object where a reference goes is a malformed reference, not a wrong type: shown as its keys.
    if (leaf.reference) expectIssue(t, leaf, 12345, 'a plain value for a reference');
    else expectIssue(t, leaf, wrong!.value, `a ${wrong!.type}`);
  }
});

t.test('a fraction, or a number out of range, at any numeric key', async (t) => {
  const SAFE = Number.MAX_SAFE_INTEGER;
  for (const leaf of all) {
    const s = leaf.schema.anyOf?.find((o) => o.type === 'integer' || o.type === 'number') ?? leaf.schema;
    if (s.type !== 'integer' && s.type !== 'number') continue;
    if (s.type === 'integer') expectIssue(t, leaf, (s.minimum ?? 0) + 1.5, 'a fraction');
    if (s.minimum !== undefined && Math.abs(s.minimum) < SAFE) expectIssue(t, leaf, s.minimum - 1, 'below the minimum');
    if (s.maximum !== undefined && Math.abs(s.maximum) < SAFE) expectIssue(t, leaf, s.maximum + 1, 'above the maximum');
  }
});

t.test('text of the wrong form, empty text, or a value outside the choices, at any text key', async (t) => {
  for (const leaf of all) {
    const s = leaf.schema.anyOf?.find((o) => o.type === 'string' && o.const === undefined) ?? leaf.schema;
    if (s.type !== 'string') continue;
    if (s.enum) expectIssue(t, leaf, 'bogus', 'not one of the choices');
    else if (s.pattern) {
      const pattern = new RegExp(s.pattern);
      const bad = ['not / valid !', '/'].find((v) => !pattern.test(v));
      if (t.ok(bad !== undefined, `${dotted(leaf.path)}: a value of the wrong form`)) expectIssue(t, leaf, bad, 'the wrong form');
    }
    if (s.minLength) expectIssue(t, leaf, '', 'empty');
  }
  // Kept apart: a URL has no pattern in the JSON Schema, only a rule in code.
  expectIssue(t, { path: ['domain', 'joinPassword', 'keyVault', 'vaultUrl'], schema: {}, reference: false }, 'not a url', 'not a URL');
  expectIssue(t, { path: ['azure', 'managementEndpoint'], schema: {}, reference: false }, 'ftp://x', 'not http(s)');
});

t.test('a key left empty (null) is reported at its path with what to write', async (t) => {
  for (const leaf of all) {
    if (leaf.path.some((p) => typeof p === 'number')) continue;
    const path = dotted(leaf.path);
    const issues = issuesFor(withValue(leaf, null));
    const hit = issues.find((i) => i.path === path);
    if (!t.ok(hit, `${path}: null reported (got ${JSON.stringify(issues)})`)) continue;
    t.match(hit!.message, /^is empty: (write|add)\b/, `${path}: ${hit!.message}`);
    t.equal(hit!.got, undefined, `${path}: nothing more to show`);
  }
});
