import { open } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { configSchema, secretRef, storageKeyRef, type Config } from './config-schema.js';
import { AgentError } from './errors.js';

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
  return node !== undefined && layers(node).some((n) => n._zod.def.type === 'optional' || n._zod.def.type === 'default');
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

/** Zod's text, wherever a schema rule has no message of its own; replaced by ours. */
const ZOD_WORDING = '\u0000zod';

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

function issuesFromZod(error: z.ZodError, data: unknown): ConfigIssue[] {
  const out = error.issues.flatMap((iss) => toIssues(iss, iss.path, data));
  // One message per key: the first says enough.
  const seen = new Set<string>();
  return out.filter((i) => (seen.has(i.path) ? false : (seen.add(i.path), true)));
}

/** Validate already-parsed YAML data. */
export function validateConfig(data: unknown, file = 'config'): Config {
  if (data === null || data === undefined) {
    throw new ConfigInvalid(file, [
      { path: '', message: 'is empty: write at least domain.name and the join secret (see /usr/share/dsvm-agent/config.example.yaml)' },
    ]);
  }
  const parsed = configSchema.safeParse(data, { reportInput: true, error: () => ZOD_WORDING });
  if (!parsed.success) throw new ConfigInvalid(file, issuesFromZod(parsed.error, data));
  return parsed.data;
}

/**
 * The largest config accepted. A real one is a few kilobytes; the limit is
 * checked before anything is read or parsed (a 200 MB file once cost 490 MB
 * of memory in the YAML parser before any rule could refuse it).
 */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/**
 * How many alias expansions a document may make. yaml's own default (100) is
 * kept and named: a few anchors for repeated blocks are fine, a "billion
 * laughs" document is not. Going over is a config error (exit 2, which
 * systemd's RestartPreventExitStatus=2 honours), not a crash (exit 1, which
 * restarted the daemon every 5 s).
 */
const MAX_ALIAS_COUNT = 100;

function tooLarge(bytes: number): ConfigIssue {
  return {
    path: '',
    message: `is ${bytes} bytes, over the ${MAX_CONFIG_BYTES} byte (1 MiB) limit: a config is a few kilobytes; check that --config names the right file`,
  };
}

/** The byte offset of the first byte that is not valid UTF-8 (overlong forms and surrogates included), or -1. */
export function firstInvalidUtf8(buf: Uint8Array): number {
  let i = 0;
  while (i < buf.length) {
    const b = buf[i] as number;
    if (b < 0x80) {
      i++;
      continue;
    }
    const [len, min] =
      b >= 0xc2 && b <= 0xdf ? [2, 0x80] : b >= 0xe0 && b <= 0xef ? [3, 0x800] : b >= 0xf0 && b <= 0xf4 ? [4, 0x10000] : [0, 0];
    if (len === 0 || i + len > buf.length) return i;
    let cp = b & (0xff >> (len + 1));
    for (let k = 1; k < len; k++) {
      const c = buf[i + k] as number;
      if ((c & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += len;
  }
  return -1;
}

/** Decode config bytes, refusing what is too large or not UTF-8 (naming the byte offset). */
export function decodeConfig(buf: Uint8Array, file = 'config'): string {
  if (buf.length > MAX_CONFIG_BYTES) throw new ConfigInvalid(file, [tooLarge(buf.length)]);
  const bad = firstInvalidUtf8(buf);
  if (bad >= 0) {
    throw new ConfigInvalid(file, [
      {
        path: '',
        message: `is not valid UTF-8 at byte ${bad} (0x${(buf[bad] as number).toString(16).padStart(2, '0')}): save the file as UTF-8, e.g. iconv -f latin1 -t utf-8`,
      },
    ]);
  }
  return Buffer.from(buf).toString('utf8');
}

/** Parse YAML text (duplicate keys are errors, not silently last-wins) and validate it. */
export function parseConfig(text: string, file = 'config'): Config {
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_CONFIG_BYTES) throw new ConfigInvalid(file, [tooLarge(bytes)]);
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true, strict: true });
  if (doc.errors.length > 0) {
    throw new ConfigInvalid(
      file,
      doc.errors.map((e) => {
        // prettyErrors puts "at line L, column C:" on the first line; the rest is a drawing of the spot.
        const first = (e.message.split('\n')[0] ?? '').replace(/:$/, '');
        const where = e.linePos && !/ at line \d+/.test(first) ? ` at line ${e.linePos[0].line}, column ${e.linePos[0].col}` : '';
        const fix =
          e.code === 'DUPLICATE_KEY'
            ? 'keep one of the two keys (merge their contents)'
            : 'correct the YAML there (indent with spaces, quote values that contain ": " or " #")';
        return { path: '', message: `YAML syntax: ${first}${where}: ${fix}` };
      }),
    );
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (err) {
    // yaml throws a ReferenceError for too many alias expansions (and for an alias to no anchor).
    const excessive = /alias count/i.test((err as Error).message);
    throw new ConfigInvalid(file, [
      {
        path: '',
        message: excessive
          ? `YAML aliases expand to more than ${MAX_ALIAS_COUNT} nodes (a resource exhaustion attack, or a mistake): write the values out instead of repeating *aliases`
          : `YAML: ${(err as Error).message}: correct the anchors (&name) and aliases (*name)`,
      },
    ]);
  }
  return validateConfig(data, file);
}

/** Read and validate the config file; a missing file is a config error naming the fix. */
export async function loadConfig(file: string): Promise<Config> {
  let bytes: Uint8Array;
  try {
    const fh = await open(file, 'r');
    try {
      // The size first: an oversized file is refused without being read into memory.
      const { size } = await fh.stat();
      if (size > MAX_CONFIG_BYTES) throw new ConfigInvalid(file, [tooLarge(size)]);
      bytes = await fh.readFile();
    } finally {
      await fh.close();
    }
  } catch (err) {
    if (err instanceof ConfigInvalid) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigInvalid(file, [
      {
        path: '',
        message:
          code === 'ENOENT'
            ? 'does not exist: write it (cloud-init write_files, or copy /usr/share/dsvm-agent/config.example.yaml) or pass --config PATH'
            : `cannot be read (${code ?? String(err)}): check its permissions`,
      },
    ]);
  }
  return parseConfig(decodeConfig(bytes, file), file);
}
