import type { GlobalOptions } from '../../agent/context.js';

/**
 * `dsvm-agent login --user NAME [--json]`: the per-login work for callers
 * that open no PAM session (JupyterHub's pre_spawn_hook) and for admins.
 * Same path and same bound as `pam-session`; the exit code tells the caller
 * what happened: 0 done (or nothing to do for this account), 1 failed or
 * refused, 2 bad usage or config, 3 not finished yet (the daemon finishes it,
 * or the share is down: retry later).
 */
export async function loginCommand(g: GlobalOptions, opts: { user: string; json?: boolean }): Promise<number> {
  const [{ requestLogin }, { exitCodeForOutcome }] = await Promise.all([
    import('../../tasks/workspace/request.js'),
    import('../../tasks/workspace/exit-code.js'),
  ]);
  if (process.getuid?.() !== 0) {
    const { configError } = await import('../../agent/errors.js');
    throw configError('login must run as root (it creates folders on the share and acts as the user in $HOME)', {
      fix: 'run it as root; JupyterHub must run as root, or call it through a sudo rule for exactly this command',
      reason: 'not-root',
    });
  }
  const { via, outcome } = await requestLogin({
    user: opts.user,
    ...(g.root === undefined ? {} : { root: g.root }),
    ...(g.configFile === undefined ? {} : { configFile: g.configFile }),
  });
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ via, ...outcome })}\n`);
  } else {
    process.stdout.write(`${outcome.status}: ${outcome.message}\n`);
    for (const w of [...(outcome.share?.warnings ?? []), ...(outcome.home?.warnings ?? [])]) process.stdout.write(`  warning: ${w}\n`);
  }
  // Nothing left running may keep the caller (JupyterHub's spawn) waiting.
  setTimeout(() => process.exit(), 200).unref();
  return exitCodeForOutcome(outcome);
}
