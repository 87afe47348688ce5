// Bundles the agent into dist/ with esbuild: one entry (dist/cli.mjs) plus
// chunks for the lazily imported commands, so the PAM hook loads only what
// it needs and the .deb carries no node_modules.
import { build } from 'esbuild';
import { readFileSync, rmSync } from 'node:fs';
import { agentBuildOptions } from './esbuild-options.mjs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
rmSync(new URL('../dist', import.meta.url), { recursive: true, force: true });
await build({
  ...agentBuildOptions(pkg.version),
  entryPoints: { cli: 'src/main.ts' },
  outdir: 'dist',
  splitting: true,
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunks/[name]-[hash]',
  sourcemap: 'linked',
  legalComments: 'linked',
});
console.log(`built dist/cli.mjs (dsvm-agent ${pkg.version})`);
