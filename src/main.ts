// `pam-session` runs inside every login: it skips commander (the largest part
// of the CLI's start-up) and loads only its own small module. pam_exec passes
// no options; DSVM_AGENT_ROOT is still honoured.
const argv = process.argv.slice(2);
const run = async (): Promise<number> => {
  if (argv.length === 1 && argv[0] === 'pam-session') {
    const { pamSessionCommand } = await import('./agent/commands/pam-session.js');
    return pamSessionCommand({}, {});
  }
  const { main } = await import('./agent/cli.js');
  return main(argv);
};

// process.exitCode, not process.exit(): stdout must drain when piped.
run().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`dsvm-agent: internal error: ${String((err as Error)?.stack ?? err)}\n`);
    process.exitCode = 1;
  },
);
