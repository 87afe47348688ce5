import { Command, CommanderError, Option } from 'commander';
import { AgentError, ExitCode, exitCodeFor, messageOf } from '../agent/errors.js';
import type { GlobalOptions } from '../agent/context.js';
import { VERSION, versionLine } from '../agent/version.js';

/** Where the command line itself writes: help, usage errors, the version, fatal errors. */
export interface CliOutput {
  out: (text: string) => void;
  err: (text: string) => void;
}

const processOutput: CliOutput = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
};

/**
 * The `dsvm-agent` command line. Command bodies are imported lazily: the
 * PAM hook runs inside every login and must not load the Azure SDK or the
 * daemon to do its small job.
 */
export function buildProgram(exit: (code: number) => void, io: CliOutput = processOutput): Command {
  const program = new Command('dsvm-agent')
    // Before any subcommand exists: each copies the output settings when it is made.
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .description("Joins this VM to Active Directory, mounts the team share and prepares each user's notebooks.")
    .version(VERSION, '--version', 'print the version')
    .option('-c, --config <path>', 'config file', '/etc/dsvm-agent/config.yaml')
    .option('--root <dir>', 'prefix for every system path (tests, offline image trees); never read from the environment')
    .addOption(new Option('--log-level <level>', 'log level').choices(['error', 'warn', 'info', 'debug']).env('DSVM_AGENT_LOG_LEVEL'))
    .showHelpAfterError('(run with --help for usage)')
    .configureHelp({ showGlobalOptions: true })
    .exitOverride();

  const globals = (cmd: Command): GlobalOptions => {
    const o = cmd.optsWithGlobals<{ config?: string; root?: string; logLevel?: GlobalOptions['logLevel'] }>();
    const explicitConfig = program.getOptionValueSource('config') === 'cli';
    return {
      ...(explicitConfig || o.root === undefined ? { configFile: o.config } : {}),
      ...(o.root === undefined ? {} : { root: o.root }),
      ...(o.logLevel === undefined ? {} : { logLevel: o.logLevel }),
    };
  };
  const action =
    (load: () => Promise<(g: GlobalOptions, opts: never, cmd: Command) => Promise<number>>) =>
    async (...args: unknown[]): Promise<void> => {
      const cmd = args[args.length - 1] as Command;
      const opts = args[args.length - 2] as never;
      const fn = await load();
      exit(await fn(globals(cmd), opts, cmd));
    };

  program
    .command('run')
    .description('the daemon: first boot in the background, periodic checks, self-repair, health endpoint (started by systemd)')
    .action(action(async () => (await import('./commands/run.js')).runCommand));

  program
    .command('provision')
    .description('run the first-boot tasks now, in order; exit 0 when done')
    .option('--json', 'print the outcome as JSON')
    .action(action(async () => (await import('./commands/provision.js')).provisionCommand));

  program
    .command('plan')
    .description('show what each first-boot task would change, changing nothing')
    .option('--json', 'print the plan as JSON')
    .action(action(async () => (await import('./commands/plan.js')).planCommand));

  program
    .command('login')
    .description("prepare a user's workspace folder and $HOME link (JupyterHub pre_spawn_hook, manual use)")
    .requiredOption('-u, --user <name>', 'the user, as NSS knows them')
    .option('--json', 'print the outcome as JSON')
    .action(action(async () => (await import('./commands/login.js')).loginCommand));

  program
    .command('pam-session')
    .description('entry for pam_exec: reads PAM_USER and PAM_TYPE, acts on open_session, always exits 0')
    .action(action(async () => (await import('./commands/pam-session.js')).pamSessionCommand));

  // Not part of the command-line contract: the daemon runs its Azure SDK calls through it (azure/child.ts).
  program
    .command('azure-call', { hidden: true })
    .description('one Azure call for the daemon: request on stdin, JSON answer on stdout')
    .action(action(async () => (await import('./commands/azure-call.js')).azureCallCommand));

  program
    .command('status')
    .description('every check, its state and reason (asks the daemon; computes them itself if it is down)')
    .option('--json', 'print as JSON')
    .action(action(async () => (await import('./commands/status.js')).statusCommand));

  program
    .command('deprovision')
    .description('undo for image capture: remove join, mount credentials, config written by the agent and state')
    .option('--leave-domain', 'also delete this computer account from the domain')
    .option('-y, --yes', 'act without asking (required when stdin is not a terminal)')
    .action(action(async () => (await import('./commands/deprovision.js')).deprovisionCommand));

  program
    .command('sweep')
    .description('delete the computer objects of VMs of this pool that no longer exist (run by one VM of the pool)')
    .option('--dry-run', 'list what would be deleted, changing nothing')
    .option('--json', 'print the report as JSON')
    .action(action(async () => (await import('./commands/sweep.js')).sweepCommand));

  const config = program.command('config').description('configuration commands');
  config
    .command('check')
    .argument('[file]', 'config file to validate (default: --config)')
    .description('validate a config file; errors name the key path and the fix (exit 2 when invalid)')
    .action(async (file: string | undefined, _opts: unknown, cmd: Command) => {
      const { configCheckCommand } = await import('./commands/config-check.js');
      exit(await configCheckCommand(globals(cmd), file));
    });

  program
    .command('version')
    .description('print the version and the Node.js runtime it runs on')
    .action(() => {
      io.out(`${versionLine()}\n`);
      exit(ExitCode.ok);
    });

  return program;
}

/** Entry point: parse argv, run, map errors to the contract's exit codes. */
export async function main(argv: string[], io: CliOutput = processOutput): Promise<number> {
  let code: number = ExitCode.ok;
  const program = buildProgram((c) => {
    code = c;
  }, io);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) return exitCodeForCommander(err);
    const fix = err instanceof AgentError && err.fix ? `\n  fix: ${err.fix}` : '';
    io.err(`dsvm-agent: ${err instanceof AgentError ? err.message : messageOf(err)}${fix}\n`);
    return exitCodeFor(err);
  }
}

/**
 * Help that was asked for (`--help`, `help [command]`) is a success; help
 * that commander shows because a command is missing (`dsvm-agent`,
 * `dsvm-agent config`) is bad usage, so a script that forgot the command
 * does not carry on as if it had run. Commander raises "commander.help" for
 * both and tells them apart only by the exit code it proposes (1 for the
 * missing command).
 */
function exitCodeForCommander(err: CommanderError): number {
  if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return ExitCode.ok;
  if (err.code === 'commander.help' && err.exitCode === 0) return ExitCode.ok;
  return ExitCode.usage;
}
