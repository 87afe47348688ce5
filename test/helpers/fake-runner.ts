import type { RunRequest, RunResult, Runner } from '../../src/agent/runner.js';

/** A canned answer for commands whose argv matches. */
export interface FakeCommand {
  /** Program name or path (basename match), e.g. "adcli". */
  file: string;
  /** Either exact args, or a predicate over them. Omit to match any args. */
  args?: readonly string[] | ((args: readonly string[]) => boolean);
  /** Result fields; defaults to exit 0 with empty output. */
  result?: Partial<RunResult> | ((req: RunRequest) => Partial<RunResult> | Promise<Partial<RunResult>>);
  /** How many times it may match (default: unlimited). */
  times?: number;
}

/**
 * The one fake command runner for unit tests: matches argv against canned
 * answers, records every call (with stdin, so tests can assert a secret went
 * only there), and fails the test on any unexpected command.
 */
export class FakeRunner {
  readonly calls: RunRequest[] = [];
  readonly unexpected: RunRequest[] = [];
  private readonly commands: (FakeCommand & { used: number })[] = [];

  constructor(commands: FakeCommand[] = []) {
    for (const c of commands) this.on(c);
  }

  on(c: FakeCommand): this {
    this.commands.push({ ...c, used: 0 });
    return this;
  }

  readonly run: Runner = async (req) => {
    this.calls.push(req);
    const base = req.file.split('/').pop();
    const args = req.args ?? [];
    const match = this.commands.find((c) => {
      if (c.times !== undefined && c.used >= c.times) return false;
      if (c.file !== req.file && c.file !== base) return false;
      if (c.args === undefined) return true;
      if (typeof c.args === 'function') return c.args(args);
      return c.args.length === args.length && c.args.every((a, i) => a === args[i]);
    });
    if (!match) {
      this.unexpected.push(req);
      return {
        exitCode: 127,
        signal: null,
        stdout: '',
        stderr: `unexpected command in test: ${req.file} ${args.join(' ')}`,
        timedOut: false,
        startError: 'ENOENT',
        durationMs: 0,
      };
    }
    match.used++;
    const partial = typeof match.result === 'function' ? await match.result(req) : (match.result ?? {});
    return { exitCode: 0, signal: null, stdout: '', stderr: '', timedOut: false, startError: null, durationMs: 1, ...partial };
  };

  /** argv strings of every call, for assertions. */
  argv(): string[] {
    return this.calls.map((c) => [c.file, ...(c.args ?? [])].join(' '));
  }
}
