// The CLI's ES module entry (dist/cli.mjs). The PAM hook does not come
// through here: /usr/sbin/dsvm-agent runs src/entry.ts, which handles
// `pam-session` itself and loads this file for every other command.
//
// process.exitCode, not process.exit(): stdout must drain when piped.
import('./app/cli.js')
  .then(({ main }) => main(process.argv.slice(2)))
  .then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`dsvm-agent: internal error: ${String((err as Error)?.stack ?? err)}\n`);
      process.exitCode = 1;
    },
  );
