// What /usr/sbin/dsvm-agent runs: one CommonJS file. `pam-session` runs in
// every login, so it is bundled in here with Node built-ins only and never
// touches the ES module loader (which costs a cold process several
// milliseconds per module, measured by bench/login.ts). Every other command
// loads the full CLI (dist/cli.mjs and its chunks).
import { pamSessionCommand } from './app/commands/pam-session.js';

/**
 * The only variables the login hook reads. pam_exec hands the hook the PAM
 * environment, which a user fills wherever pam_env reads their files
 * (`user_readenv`) earlier in the stack: anything else in it is the user's
 * word, not the system's. /usr/sbin/dsvm-agent already starts Node with only
 * these (`env -i`, so no NODE_OPTIONS); this is the same rule once more for
 * whatever started this file another way, so a child or a later read never
 * sees the rest.
 */
const PAM_VARIABLES = ['PAM_USER', 'PAM_TYPE', 'PAM_SERVICE'] as const;
const FIXED_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * `pam-session`, or `--root DIR pam-session` (tests and the benchmark point
 * the hook at a temp tree through argv, which comes from the PAM config an
 * admin wrote, never through the environment).
 */
function pamSessionArgs(argv: readonly string[]): { root?: string } | undefined {
  if (argv.length === 1 && argv[0] === 'pam-session') return {};
  if (argv.length === 3 && argv[0] === '--root' && argv[2] === 'pam-session' && argv[1]) return { root: argv[1] };
  const joined = argv.length === 2 ? /^--root=(.+)$/.exec(argv[0] ?? '') : null;
  if (joined && argv[1] === 'pam-session') return { root: joined[1]! };
  return undefined;
}

const argv = process.argv.slice(2);
const pam = pamSessionArgs(argv);
if (pam) {
  for (const name of Object.keys(process.env)) {
    if (!(PAM_VARIABLES as readonly string[]).includes(name)) delete process.env[name];
  }
  process.env.PATH = FIXED_PATH;
  void pamSessionCommand(pam, {}).then((code) => {
    process.exitCode = code;
  });
} else {
  // Resolved next to this file at run time (marked external in the build).
  // @ts-expect-error: dist/cli.mjs exists only in the built tree
  void import('./cli.mjs');
}
