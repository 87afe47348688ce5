import { open } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { configSchema, type Config } from './config-schema.js';
import { ConfigInvalid, issuesFromZod, ZOD_WORDING, type ConfigIssue } from './config-errors.js';

/**
 * Reading the config: the file's size and encoding, YAML, then the schema
 * (config-schema.ts). What a broken rule says is worded in config-errors.ts.
 */

export { ConfigInvalid, formatIssue, type ConfigIssue } from './config-errors.js';

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
