// What /usr/sbin/dsvm-agent runs: one CommonJS file. `pam-session` runs in
// every login, so it is bundled in here with Node built-ins only and never
// touches the ES module loader (which costs a cold process several
// milliseconds per module, measured by bench/login.ts). Every other command
// loads the full CLI (dist/cli.mjs and its chunks).
import { pamSessionCommand } from './agent/commands/pam-session.js';

const argv = process.argv.slice(2);
if (argv.length === 1 && argv[0] === 'pam-session') {
  void pamSessionCommand({}, {}).then((code) => {
    process.exitCode = code;
  });
} else {
  // Resolved next to this file at run time (marked external in the build).
  // @ts-expect-error: dist/cli.mjs exists only in the built tree
  void import('./cli.mjs');
}
