import { main } from './agent/cli.js';

// process.exitCode, not process.exit(): stdout must drain when piped.
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`dsvm-agent: internal error: ${String((err as Error)?.stack ?? err)}\n`);
    process.exitCode = 1;
  },
);
