// Bundles the agent into dist/ with esbuild: one entry (dist/cli.mjs) plus
// chunks for the lazily imported commands, so the PAM hook loads only what
// it needs and the .deb carries no node_modules.
import { build } from 'esbuild';
import { readFileSync, rmSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
rmSync(new URL('../dist', import.meta.url), { recursive: true, force: true });
await build({
  entryPoints: { cli: 'src/main.ts' },
  outdir: 'dist',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunks/[name]-[hash]',
  sourcemap: 'linked',
  legalComments: 'linked',
  minifySyntax: true,
  define: { __DSVM_AGENT_VERSION__: JSON.stringify(pkg.version) },
  // CommonJS dependencies (winston, ...) call require(); give the ESM bundle one.
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  logLevel: 'warning',
});
console.log(`built dist/cli.mjs (dsvm-agent ${pkg.version})`);
