import { watchFile, unwatchFile } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import type { Config } from '../../agent/config-schema.js';
import { loadConfig } from '../../agent/config.js';
import { AgentError, messageOf } from '../../agent/errors.js';
import type { Logger } from '../../agent/log.js';

/**
 * The config file as the running daemon sees it. The daemon applies its
 * config once, at start: it keeps running on that last good one whatever the
 * file becomes, and says so here, in /health and `status`, so a file that a
 * restart (or the next boot) would refuse is found now, not then.
 */
export interface ConfigView {
  file: string;
  /** ok: the file is what the daemon runs; changed: valid but not applied; invalid: refused, the daemon runs the last good one. */
  state: 'ok' | 'changed' | 'invalid';
  /** When the file was last found in this state. */
  since: string;
  /** What is wrong (invalid) or what to do (changed), with the fix. */
  reason?: string;
}

/** How often the file's stat is compared: cheap, and within a check interval. */
const POLL_MS = 5000;

/**
 * Re-reads the config on SIGHUP and when the file changes on disk. Never
 * applies it: a daemon half-way through first boot or a repair must not
 * change its settings under itself; a restart does that, and the view tells
 * the operator when one is needed or would fail.
 */
export class ConfigWatch {
  private view: ConfigView;
  private readonly onHup = (): void => void this.recheck('SIGHUP');

  constructor(
    private readonly file: string,
    private readonly running: Config,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.view = { file, state: 'ok', since: new Date(now()).toISOString() };
  }

  get current(): ConfigView {
    return this.view;
  }

  start(): void {
    // A listener of its own keeps the default action of SIGHUP (exit) away, and the runner's clean-up with it.
    process.on('SIGHUP', this.onHup);
    watchFile(this.file, { interval: POLL_MS, persistent: false }, () => void this.recheck('change'));
  }

  stop(): void {
    process.off('SIGHUP', this.onHup);
    unwatchFile(this.file);
  }

  /** Reads the file again and updates the view; never throws. */
  async recheck(why: string): Promise<ConfigView> {
    let next: Omit<ConfigView, 'since'>;
    try {
      const cfg = await loadConfig(this.file);
      next = isDeepStrictEqual(cfg, this.running)
        ? { file: this.file, state: 'ok' }
        : { file: this.file, state: 'changed', reason: 'a valid config that this daemon does not run yet: restart the agent to apply it' };
    } catch (err) {
      const fix = err instanceof AgentError && err.fix ? `; fix: ${err.fix}` : '';
      next = {
        file: this.file,
        state: 'invalid',
        reason: `${messageOf(err).replace(/\n\s*/g, '; ')}${fix}; the daemon keeps running on the last good config`,
      };
    }
    if (next.state !== this.view.state || next.reason !== this.view.reason) {
      this.view = { ...next, since: new Date(this.now()).toISOString() };
      const say = `config ${this.file} (${why}): ${next.state}${next.reason ? `: ${next.reason}` : ''}`;
      if (next.state === 'invalid') this.log.error(say);
      else this.log.info(say);
    }
    return this.view;
  }
}
