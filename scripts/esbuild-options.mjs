// The esbuild options the agent ships with, shared by scripts/build.mjs and
// the benchmarks (bench/daemon.ts bundles its harness with the same options,
// so it measures the footprint of the code as shipped).
//
// Minified: V8 keeps every script's source text in the heap (for lazy
// compilation and Function.prototype.toString), so whitespace and long local
// names cost the daemon resident memory for as long as it runs (about 2.5 MB
// of heap, measured by bench/daemon.ts). keepNames keeps class and function
// names for error messages; the linked source map maps stack traces back.
export function agentBuildOptions(version) {
  return {
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    minify: true,
    keepNames: true,
    define: { __DSVM_AGENT_VERSION__: JSON.stringify(version) },
    // CommonJS dependencies (winston, ...) call require(); give the ESM bundle one.
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
    logLevel: 'warning',
  };
}
