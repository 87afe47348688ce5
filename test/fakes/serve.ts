/**
 * Run the Azure fakes until SIGTERM/SIGINT, for lab scripts and tests in other
 * network namespaces:
 *
 *   npx tsx test/fakes/serve.ts --host 127.0.0.1 --out FILE [--state-dir DIR]
 *       [--files-root ACCOUNT[/SHARE]=DIR ...] [--seed FILE.json]
 *
 * FILE gets {imds, keyVault, arm, files, control, caFile} (written atomically,
 * mode 0644: no secret in it). The CA and server certificate go to DIR (or a
 * temp dir). Nothing secret is printed.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startFakes } from './index.js';
import type { Seed } from './types.js';

function usage(message: string): never {
  process.stderr.write(
    `serve: ${message}\nusage: serve.ts --host ADDR --out FILE [--state-dir DIR] [--files-root ACCOUNT[/SHARE]=DIR ...] [--seed FILE.json]\n`,
  );
  process.exit(2);
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        host: { type: 'string', default: '127.0.0.1' },
        out: { type: 'string' },
        'state-dir': { type: 'string' },
        'files-root': { type: 'string', multiple: true, default: [] },
        seed: { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    usage((err as Error).message);
  }
  if (!values.out) usage('--out FILE is required');
  const filesRoots: Record<string, string> = {};
  for (const spec of values['files-root'] ?? []) {
    const eq = spec.indexOf('=');
    if (eq <= 0 || eq === spec.length - 1) usage(`--files-root wants ACCOUNT=DIR, got "${spec}"`);
    filesRoots[spec.slice(0, eq)] = spec.slice(eq + 1);
  }
  const seed = values.seed ? (JSON.parse(await readFile(values.seed, 'utf8')) as Seed) : undefined;
  const fakes = await startFakes({
    host: values.host ?? '127.0.0.1',
    filesRoots,
    ...(values['state-dir'] ? { tlsDir: path.resolve(values['state-dir']) } : {}),
    ...(seed ? { seed } : {}),
  });
  const out = path.resolve(values.out);
  const tmp = `${out}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify({ ...fakes.urls, caFile: fakes.caFile }, null, 2)}\n`, { mode: 0o644 });
  await rename(tmp, out);
  process.stdout.write(`fakes ready: ${JSON.stringify(fakes.urls)}\n`);

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`fakes: ${signal}, closing\n`);
    fakes.close().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`fakes: close failed: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`serve: ${(err as Error).message}\n`);
  process.exit(1);
});
