/** Replaced at bundle time from package.json; "dev" when run from sources. */
declare const __DSVM_AGENT_VERSION__: string | undefined;
export const VERSION: string = typeof __DSVM_AGENT_VERSION__ === 'string' ? __DSVM_AGENT_VERSION__ : '0.0.0-dev';
