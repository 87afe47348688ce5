import { z } from 'zod';
import { configSchema, secretRef, storageKeyRef } from './config-schema.js';
import { AgentError } from './errors.js';

/**
 * The wording of config errors: each problem zod finds becomes one line
 * naming the key path, what is wrong and the fix, in the admin's words,
 * read off the schema itself (descriptions, defaults, known keys). A value
 * where a secret reference belongs is never echoed.
 */

/** One problem in a config file, named by its key path. */
export interface ConfigIssue {
  /** Dotted key path, e.g. "domain.computerName" or "share.options[2]"; "" for the whole file. */
  path: string;
  /** What is wrong and how to fix it. */
  message: string;
  /**
   * The offending value, JSON-encoded (a mapping by its keys only); absent
   * where there is none (missing, empty or unknown keys) and where it may be
   * a secret.
   */
  got?: string;
}

/** Thrown when a config is invalid; `issues` lists every problem. */
export class ConfigInvalid extends AgentError {
  readonly issues: ConfigIssue[];
  readonly file: string;
  constructor(file: string, issues: ConfigIssue[]) {
    super('config', `${file}: ${issues.length} problem${issues.length === 1 ? '' : 's'}\n${issues.map(formatIssue).join('\n')}`, {
      fix: 'correct the listed keys and run `dsvm-agent config check` again',
      reason: 'config-invalid',
    });
    this.issues = issues;
    this.file = file;
  }
}

/** "domain.name: must be ... (got "x")". */
export function formatIssue(i: ConfigIssue): string {
  const where = i.path === '' ? '(file)' : i.path;
  return `  ${where}: ${i.message}${i.got === undefined ? '' : ` (got ${i.got})`}`;
}

function pathString(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out === '' ? String(p) : `.${String(p)}`;
  }
  return out;
}

// The parts of zod's schema objects the error wording reads: zod 4 keeps a
// schema's definition in `_zod.def` (what z.toJSONSchema walks too). Typed
// here only as far as it is used.
interface SchemaNode {
  /** On numbers: "safeint" (and the like) once .int() is applied. */
  format?: string | null;
  _zod: {
    def: {
      type: string;
      innerType?: SchemaNode;
      in?: SchemaNode;
      shape?: Record<string, SchemaNode>;
      options?: SchemaNode[];
      element?: SchemaNode;
      keyType?: SchemaNode;
      valueType?: SchemaNode;
      entries?: Record<string, string | number>;
      defaultValue?: unknown;
    };
  };
}

const root = configSchema as unknown as SchemaNode;
const wrappers = new Set(['optional', 'default', 'prefault', 'nullable', 'readonly', 'catch', 'nonoptional']);
/** Where a secret reference goes: a plain value there may be the secret itself. */
const references = new Set([unwrap(secretRef as unknown as SchemaNode), unwrap(storageKeyRef as unknown as SchemaNode)]);

/** Every layer of a key's schema, outermost first: descriptions and defaults sit on the wrappers. */
function layers(node: SchemaNode): SchemaNode[] {
  const out = [node];
  for (;;) {
    const def = (out[out.length - 1] as SchemaNode)._zod.def;
    const inner = wrappers.has(def.type) ? def.innerType : def.type === 'pipe' ? def.in : undefined;
    if (!inner) return out;
    out.push(inner);
  }
}

/** The schema under optional/default/... wrappers. */
function unwrap(node: SchemaNode): SchemaNode {
  return layers(node).pop() as SchemaNode;
}

/** The schema of a key path; inside a union, the member that has the key. */
function schemaAt(path: readonly PropertyKey[]): SchemaNode | undefined {
  let node: SchemaNode | undefined = root;
  for (const seg of path) {
    if (!node) return undefined;
    const def: SchemaNode['_zod']['def'] = unwrap(node)._zod.def;
    if (typeof seg === 'number') node = def.element;
    else if (def.type === 'object') node = def.shape?.[String(seg)];
    else if (def.type === 'record') node = def.valueType;
    else if (def.type === 'union')
      node = def.options?.map(unwrap).find((o) => o._zod.def.shape?.[String(seg)])?._zod.def.shape?.[String(seg)];
    else node = undefined;
  }
  return node;
}

function descriptionOf(node: SchemaNode | undefined): string | undefined {
  return node
    ? layers(node)
        .map((n) => z.globalRegistry.get(n as never)?.description)
        .find((d) => d !== undefined)
    : undefined;
}

function defaultOf(node: SchemaNode | undefined): unknown {
  return node ? layers(node).find((n) => n._zod.def.type === 'default')?._zod.def.defaultValue : undefined;
}

function isOptional(node: SchemaNode | undefined): boolean {
  return node !== undefined && layers(node).some((n) => ['optional', 'default', 'prefault'].includes(n._zod.def.type));
}

/** ", or remove ..." where leaving the value out fixes it too. */
function orRemove(path: readonly PropertyKey[], node: SchemaNode | undefined): string {
  if (typeof path[path.length - 1] === 'number') return ', or remove the item';
  return isOptional(node) ? ', or remove the key' : '';
}

/** Keys that may appear in the mapping at a path, for "unknown key" and "write its keys" hints. */
function knownKeysAt(node: SchemaNode | undefined): string[] {
  if (!node) return [];
  const def = unwrap(node)._zod.def;
  if (def.type === 'object') return Object.keys(def.shape ?? {});
  if (def.type === 'record' && def.keyType) return Object.values(unwrap(def.keyType)._zod.def.entries ?? {}).map(String);
  if (def.type === 'union') return [...new Set((def.options ?? []).flatMap((o) => knownKeysAt(o)))];
  return [];
}

function valueAt(data: unknown, path: readonly PropertyKey[]): unknown {
  let cur = data;
  for (const p of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[p];
  }
  return cur;
}

const isMapping = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

function kindOf(v: unknown): string {
  if (v === null) return 'empty';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return 'text';
  if (typeof v === 'number') return 'a number';
  if (typeof v === 'boolean') return 'true/false';
  return typeof v;
}

/**
 * The offending value as shown after a message. A reference given as
 * anything but a mapping may be the secret itself, so it is not shown; the
 * fields inside a reference (vault URL, secret name, file path) are.
 */
function shownValue(iss: z.core.$ZodIssue, path: readonly PropertyKey[], value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (iss.code === 'custom' && (iss.params as { secret?: boolean } | undefined)?.secret) return undefined;
  if (isMapping(value)) return `{${Object.keys(value).join(', ')}}`;
  const node = schemaAt(path);
  if (node && references.has(unwrap(node))) return undefined;
  const s = JSON.stringify(value);
  if (s === undefined) return undefined;
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** Wording for a key left empty (`key:` with nothing after it in YAML). */
function emptyMessage(path: readonly PropertyKey[]): string {
  const node = schemaAt(path);
  const def = node && unwrap(node)._zod.def;
  const remove = orRemove(path, node);
  if (def?.type === 'object' || def?.type === 'record')
    return `is empty: write its keys below it, indented (${knownKeysAt(node).join(', ')})${isOptional(node) ? ', or remove the line' : ''}`;
  if (def?.type === 'enum') return `is empty: write one of ${Object.values(def.entries ?? {}).join(', ')}${remove}`;
  if (def?.type === 'boolean') return `is empty: write true or false${remove}`;
  if (def?.type === 'number') {
    const example = defaultOf(node);
    return `is empty: write a number, e.g. ${typeof example === 'number' ? example : 1}${remove}`;
  }
  if (def?.type === 'array') return `is empty: write a list such as [first, second]${remove}`;
  return `is empty: write ${descriptionOf(node) ?? 'a value'}${remove}`;
}

/** Wording for a value of the wrong type, or none where one is required. */
function typeMessage(expected: string, value: unknown, path: readonly PropertyKey[]): string {
  const node = schemaAt(path);
  const what = descriptionOf(node);
  const keys = knownKeysAt(node);
  if (value === undefined)
    return `is required: add ${what ?? 'it'}${expected === 'object' && keys.length ? ` (its keys: ${keys.join(', ')})` : ''}`;
  if (value === null) return emptyMessage(path);
  if (expected === 'object')
    return `must be a mapping of keys, not ${kindOf(value)}: write its keys below it, indented (${keys.join(', ')})`;
  if (expected === 'int' || expected === 'number') {
    if (typeof value === 'number')
      return Number.isFinite(value)
        ? 'must be a whole number: drop the fraction'
        : `must be a finite number: write digits${orRemove(path, node)}`;
    const whole = expected === 'int' || /int/.test((node && unwrap(node).format) ?? '');
    const example = defaultOf(node);
    return `must be ${whole ? 'a whole number' : 'a number'}, not ${kindOf(value)}: write digits without quotes or a unit, e.g. ${typeof example === 'number' ? example : 1}`;
  }
  if (expected === 'boolean') return `must be true or false, not ${kindOf(value)}: write true or false without quotes`;
  if (expected === 'string') {
    if (Array.isArray(value)) return `must be a single value, not a list: write ${what ?? 'one value'}`;
    return `must be text, not ${kindOf(value)}: write it in quotes${what ? ` (${what})` : ''}`;
  }
  if (expected === 'array') {
    const sample = typeof value === 'string' ? `[${value}]` : '[first, second]';
    return `must be a list, not ${kindOf(value)}: write ${sample}, or one "- item" line per item`;
  }
  return `must be ${expected}, not ${kindOf(value)}: correct it`;
}

/** Our wording for an issue zod described in its own words: what is wrong, then the fix. */
function genericMessage(iss: z.core.$ZodIssue, path: readonly PropertyKey[], value: unknown): string {
  const node = schemaAt(path);
  const what = descriptionOf(node);
  switch (iss.code) {
    case 'invalid_type':
      return typeMessage(iss.expected, value, path);
    case 'too_small': {
      const n = Number(iss.minimum);
      if (iss.origin === 'string')
        return n <= 1 ? `is empty: write ${what ?? 'a value'}${orRemove(path, node)}` : `must be at least ${n} characters: lengthen it`;
      if (iss.origin === 'array' || iss.origin === 'set')
        return `must list at least ${n} item${n === 1 ? '' : 's'}: add ${n === 1 ? 'one' : 'more'}`;
      return `must be ${iss.inclusive ? 'at least' : 'more than'} ${n}: raise it`;
    }
    case 'too_big': {
      const n = Number(iss.maximum);
      if (iss.origin === 'string') return `must be at most ${n} characters: shorten it`;
      if (iss.origin === 'array' || iss.origin === 'set') return `must list at most ${n} item${n === 1 ? '' : 's'}: remove some`;
      return `must be ${iss.inclusive ? 'at most' : 'less than'} ${n}: lower it`;
    }
    case 'invalid_format':
      if (iss.format === 'regex')
        return what ? `is not in the expected form: write ${what}` : `must match ${iss.pattern ?? 'its pattern'}: correct it`;
      return `must be a valid ${iss.format}: correct it`;
    case 'not_multiple_of':
      return `must be a multiple of ${String(iss.divisor)}: round it`;
    case 'invalid_value': {
      const values = iss.values.map((v) => String(v));
      return values.length === 1 ? `must be ${values[0]}: write ${values[0]}` : `must be one of ${values.join(', ')}: pick one`;
    }
    case 'invalid_union':
      return `does not match any accepted form: write ${what ?? 'one of the forms in config.schema.json'}`;
    case 'invalid_key':
      return `has a key that is not accepted: use ${knownKeysAt(node).join(', ') || 'a valid key'}`;
    case 'invalid_element':
      return 'has an invalid element: correct it';
    default:
      return `is not valid: correct it${what ? ` (${what})` : ''}`;
  }
}

function unknownKeyMessage(key: string, known: string[]): string {
  const near = known.find((k) => k !== key && editDistance(k.toLowerCase(), key.toLowerCase()) <= 2);
  if (near) return `unknown key: rename it to ${near}, or remove it`;
  return `unknown key: remove it or fix its spelling${known.length ? ` (known here: ${known.join(', ')})` : ''}`;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

/**
 * The member of a union the value was meant to be: the only one whose own
 * keys are all there with the right kind of value. Its issues then name
 * the key inside the reference (e.g. share.key.armListKeys.keyName) rather
 * than just "not a valid reference".
 */
function intendedMember(iss: z.core.$ZodIssueInvalidUnion): z.core.$ZodIssue[] | undefined {
  const fits = iss.errors.filter((member) =>
    member.every((i) => {
      if (i.path.length === 0) return i.code === 'unrecognized_keys';
      if (i.path.length === 1 && i.code === 'invalid_type') return i.input !== undefined && i.expected !== 'object';
      return true;
    }),
  );
  return fits.length === 1 ? fits[0] : undefined;
}

/** Zod's text, wherever a schema rule has no message of its own; replaced by ours (validateConfig asks zod for this). */
export const ZOD_WORDING = '\u0000zod';

function toIssues(iss: z.core.$ZodIssue, path: readonly PropertyKey[], data: unknown): ConfigIssue[] {
  if (iss.code === 'unrecognized_keys') {
    const known = knownKeysAt(schemaAt(path));
    return iss.keys.map((key) => ({ path: pathString([...path, key]), message: unknownKeyMessage(key, known) }));
  }
  if (iss.code === 'invalid_union') {
    const member = intendedMember(iss);
    if (member) return member.flatMap((i) => toIssues(i, [...path, ...i.path], data));
  }
  const value = valueAt(data, path);
  const node = schemaAt(path);
  // An empty key reads the same whatever rule it broke; a reference words its own (it may not echo the value).
  const empty = value === null && iss.code !== 'custom' && !(node && references.has(unwrap(node)));
  const message = empty ? emptyMessage(path) : iss.message === ZOD_WORDING ? genericMessage(iss, path, value) : iss.message;
  const issue: ConfigIssue = { path: pathString(path), message };
  const got = shownValue(iss, path, value);
  if (got !== undefined) issue.got = got;
  return [issue];
}

/** Every problem zod found, each worded for the admin and named by its key path; one per key. */
export function issuesFromZod(error: z.ZodError, data: unknown): ConfigIssue[] {
  const out = error.issues.flatMap((iss) => toIssues(iss, iss.path, data));
  // One message per key: the first says enough.
  const seen = new Set<string>();
  return out.filter((i) => (seen.has(i.path) ? false : (seen.add(i.path), true)));
}
