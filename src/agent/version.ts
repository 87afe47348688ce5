/** Replaced at bundle time from package.json; "dev" when run from sources. */
declare const __DSVM_AGENT_VERSION__: string | undefined;
export const VERSION: string = typeof __DSVM_AGENT_VERSION__ === 'string' ? __DSVM_AGENT_VERSION__ : '0.0.0-dev';

/**
 * What `dsvm-agent version` prints: the agent's version, then the Node.js
 * runtime running it. The package ships its own runtime, whose security
 * fixes come only with a new package, so an operator asking "which Node is
 * on this VM's login path" needs the answer from the agent itself, not from
 * `node --version` (which is the image's, a different program). The first
 * two words stay `dsvm-agent <version>` for scripts that read them.
 */
export function versionLine(runtime: string = process.version): string {
  return `dsvm-agent ${VERSION} (Node.js ${runtime})`;
}
