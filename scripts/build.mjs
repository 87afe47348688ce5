// Bundles the agent into dist/ with esbuild:
// - dist/cli.mjs: the CLI, one entry plus chunks for the lazily imported
//   commands, so the .deb carries no node_modules;
// - dist/local-login.mjs: the login work a caller does itself when no
//   daemon listens (loaded by the hook only then);
// - dist/dsvm-agent.cjs: what /usr/sbin/dsvm-agent runs: the PAM hook in
//   one CommonJS file of Node built-ins, everything else handed to cli.mjs.
import { build } from 'esbuild';
import { readFileSync, rmSync } from 'node:fs';
import { agentBuildOptions } from './esbuild-options.mjs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
rmSync(new URL('../dist', import.meta.url), { recursive: true, force: true });
const common = { ...agentBuildOptions(pkg.version), sourcemap: 'linked', legalComments: 'linked' };
await build({
  ...common,
  entryPoints: { cli: 'src/main.ts', 'local-login': 'src/tasks/workspace/local-login.ts' },
  outdir: 'dist',
  splitting: true,
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunks/[name]-[hash]',
});
// Modules of the ESM build the hook reaches only off its hot path: kept as
// dynamic imports of the files above, never bundled into the hook.
const esmSide = {
  name: 'esm-side',
  setup(b) {
    b.onResolve({ filter: /^\.\/(cli\.mjs|local-login\.js)$/ }, (args) => ({
      path: args.path === './cli.mjs' ? './cli.mjs' : './local-login.mjs',
      external: true,
    }));
  },
};
await build({
  ...common,
  entryPoints: { 'dsvm-agent': 'src/entry.ts' },
  outdir: 'dist',
  format: 'cjs',
  outExtension: { '.js': '.cjs' },
  // CommonJS has require() of its own.
  banner: {},
  plugins: [esmSide],
});
console.log(`built dist/cli.mjs, dist/dsvm-agent.cjs (dsvm-agent ${pkg.version})`);
