/**
 * README.md's configuration reference lists every key of the schema with its
 * default and meaning, and nothing else: a key added to the schema without a
 * line in the reference (or a default changed on one side only) fails here.
 */
import { readFile } from 'node:fs/promises';
import t from 'tap';
import { z } from 'zod';
import { configSchema } from '../../../src/agent/config-schema.js';

interface JsonSchema {
  type?: string;
  default?: unknown;
  properties?: Record<string, JsonSchema>;
  additionalProperties?: JsonSchema | boolean;
  propertyNames?: JsonSchema;
  anyOf?: JsonSchema[];
}

interface Key {
  path: string;
  default?: unknown;
  /** A section or other mapping: listed when present, its default is not spelled out. */
  section: boolean;
}

/**
 * Every key as the reference names it. Keys inside a secret reference are
 * named from the reference (`keyVault.vaultUrl`), since the same forms serve
 * several keys; a record's keys are named `<id>`.
 */
function keys(s: JsonSchema, path: string, out: Map<string, Key>): void {
  const at = (k: string) => (path === '' ? k : `${path}.${k}`);
  if (s.anyOf?.every((o) => o.type === 'object' && o.properties)) {
    out.set(path, { path, section: false });
    for (const form of s.anyOf) keys(form, '', out);
    return;
  }
  if (s.type === 'object' && s.properties) {
    if (path !== '') out.set(path, { path, section: true });
    for (const [k, v] of Object.entries(s.properties)) keys(v, at(k), out);
    return;
  }
  if (s.type === 'object' && s.propertyNames && typeof s.additionalProperties === 'object') {
    out.set(path, { path, section: true });
    keys(s.additionalProperties, at('<id>'), out);
    return;
  }
  out.set(path, { path, default: s.default, section: false });
}

/** The rows of the tables in README's "## Configuration" section: key → [default, meaning]. */
function referenceRows(readme: string): Map<string, { default: string; meaning: string }> {
  const start = readme.indexOf('\n## Configuration\n');
  const end = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, end === -1 ? undefined : end);
  const rows = new Map<string, { default: string; meaning: string }>();
  for (const line of section.split('\n')) {
    const m = /^\| `([^`]+)` \| (.*?) \| (.*) \|$/.exec(line);
    if (m) rows.set(m[1] as string, { default: m[2] as string, meaning: m[3] as string });
  }
  return rows;
}

/** A default as the reference writes it: `1800`, `[a, b]`. */
const spelled = (v: unknown) => `\`${Array.isArray(v) ? `[${v.join(', ')}]` : String(v)}\``;

t.test('every schema key is in the README reference with its default and meaning', async (t) => {
  const readme = await readFile(new URL('../../../README.md', import.meta.url), 'utf8');
  const rows = referenceRows(readme);
  const all = new Map<string, Key>();
  keys(z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchema, '', all);
  t.ok(all.size >= 60, `${all.size} keys in the schema`);

  for (const key of all.values()) {
    if (key.section) continue;
    const row = rows.get(key.path);
    if (!t.ok(row, `${key.path}: has a row in the reference`)) continue;
    t.ok(row!.meaning.trim().length > 0, `${key.path}: says what it means`);
    if (key.default !== undefined) t.match(row!.default, spelled(key.default), `${key.path}: default ${spelled(key.default)}`);
    else t.notOk(/^\s*$/.test(row!.default), `${key.path}: the default column says what happens without it`);
  }
  for (const name of rows.keys()) t.ok(all.has(name), `${name}: the reference names a key the schema has`);
});
