import { build } from 'esbuild';

/**
 * Bundles a TypeScript test script into one ESM file run by plain node, as
 * the shipped agent is: under the tsx loader, signal-exit (execa's clean-up)
 * sees extra signal listeners and a second copy of itself, which hides
 * exactly the signal and exit bugs these scripts test.
 */
export async function bundleForNode(contents: string, resolveDir: string, outfile: string): Promise<void> {
  await build({
    stdin: { contents, resolveDir, loader: 'ts' },
    outfile,
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
    logLevel: 'error',
  });
}
