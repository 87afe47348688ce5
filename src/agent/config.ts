import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { configSchema, secretKeys, type Config } from './config-schema.js';
import { AgentError } from './errors.js';

/** One problem in a config file, named by its key path. */
export interface ConfigIssue {
  /** Dotted key path, e.g. "domain.computerName" or "share.options[2]"; "" for the whole file. */
  path: string;
  /** What is wrong and how to fix it. */
  message: string;
  /** The offending value, JSON-encoded; absent for secrets and missing keys. */
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

function isSecretPath(path: readonly PropertyKey[]): boolean {
  return path.some((p) => typeof p === 'string' && secretKeys.has(p));
}

function shown(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  const s = JSON.stringify(value);
  if (s === undefined) return undefined;
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** Known keys of the object schema at a path, for "unknown key" hints. */
function knownKeysAt(path: readonly PropertyKey[]): string[] {
  let node: unknown = configSchema;
  const unwrap = (n: unknown): unknown => {
    let cur = n as { _zod?: { def?: { innerType?: unknown; type?: string } }; shape?: unknown };
    for (let i = 0; i < 5 && cur?._zod?.def?.innerType; i++) cur = cur._zod.def.innerType as typeof cur;
    return cur;
  };
  for (const p of path) {
    const obj = unwrap(node) as { shape?: Record<string, unknown> };
    if (!obj?.shape || typeof p !== 'string') return [];
    node = obj.shape[p];
  }
  const obj = unwrap(node) as { shape?: Record<string, unknown> };
  return obj?.shape ? Object.keys(obj.shape) : [];
}

function issuesFromZod(error: z.ZodError): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const iss of error.issues) {
    const secret = isSecretPath(iss.path);
    if (iss.code === 'unrecognized_keys') {
      const known = knownKeysAt(iss.path);
      for (const key of iss.keys) {
        out.push({
          path: pathString([...iss.path, key]),
          message: `unknown key: remove it or fix its spelling${known.length ? ` (known here: ${known.join(', ')})` : ''}`,
        });
      }
      continue;
    }
    const input = (iss as { input?: unknown }).input;
    if (iss.code === 'invalid_type' && input === undefined) {
      out.push({ path: pathString(iss.path), message: `is required: ${iss.message}` });
      continue;
    }
    const issue: ConfigIssue = { path: pathString(iss.path), message: iss.message };
    // A rule on an object reports the whole object as input: show only scalars.
    const scalar = input === null || typeof input !== 'object' || Array.isArray(input);
    const got = secret || (iss.code === 'custom' && !scalar) ? undefined : shown(input);
    if (got !== undefined) issue.got = got;
    out.push(issue);
  }
  // One message per key: a union reports each failing rule; the first says enough.
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
  const parsed = configSchema.safeParse(data, { reportInput: true });
  if (!parsed.success) throw new ConfigInvalid(file, issuesFromZod(parsed.error));
  return parsed.data;
}

/** Parse YAML text (duplicate keys are errors, not silently last-wins) and validate it. */
export function parseConfig(text: string, file = 'config'): Config {
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true, strict: true });
  if (doc.errors.length > 0) {
    throw new ConfigInvalid(
      file,
      doc.errors.map((e) => ({
        path: '',
        message: `YAML syntax: ${e.message.split('\n')[0]}${e.linePos ? ` at line ${e.linePos[0].line}, column ${e.linePos[0].col}` : ''}`,
      })),
    );
  }
  return validateConfig(doc.toJS(), file);
}

/** Read and validate the config file; a missing file is a config error naming the fix. */
export async function loadConfig(file: string): Promise<Config> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
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
  return parseConfig(text, file);
}
