import type { Config } from '../../agent/config-schema.js';
import type { Paths } from '../../agent/paths.js';
import type { LoginOutcome } from './index.js';
import { settleWithin } from '../../agent/deadline.js';
import { pending, writeSettingsCache, type LoginRequest } from './request.js';

/**
 * A login's work done by the caller itself, when no daemon listens: the
 * part of `requestLogin` that needs the whole agent (config schema, command
 * runner, task code). Its own module so the login hook loads it only then.
 */

/** Load and validate the config (the slow part of start-up), and remember its bound for the next logins. */
export async function loadAndCache(paths: Paths, configFile: string, key: string | undefined): Promise<Config> {
  const { loadConfig } = await import('../../agent/config.js');
  const cfg = await loadConfig(configFile);
  if (key !== undefined) await writeSettingsCache(paths, { key, loginTimeoutMs: cfg.workspace.loginTimeoutMs }).catch(() => undefined);
  return cfg;
}

/** No daemon: the work runs from this process, children bounded by what is left of the login's time. */
export async function loginHere(
  req: LoginRequest,
  paths: Paths,
  cfg: Config,
  remaining: () => number,
  started: number,
): Promise<LoginOutcome> {
  const [{ createBase }, { LoginService }] = await Promise.all([import('../../agent/context.js'), import('./service.js')]);
  const base = createBase({ ...(req.root === undefined ? {} : { root: req.root }) }, { paths });
  const limit = remaining() - 20;
  if (limit <= 0)
    return pending(
      req.user,
      `${req.user}: no time left within workspace.loginTimeoutMs and no daemon running: not done (start dsvm-agent)`,
      started,
    );
  return settleWithin(
    new LoginService({ cfg, paths, run: base.run, log: base.log }).run(req.user, { timeLimitMs: limit, shareHealthy: undefined }),
    limit + 50,
    () =>
      pending(req.user, `${req.user}: not finished within workspace.loginTimeoutMs and no daemon running: the next login retries`, started),
    { unref: true },
  );
}
