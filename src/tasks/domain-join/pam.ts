import path from 'node:path';
import { permanent } from '../../agent/errors.js';
import { readIfExists } from '../../agent/fsutil.js';
import { summarize } from '../../agent/runner.js';
import type { TaskContext } from '../../agent/task.js';
import { MKHOMEDIR_SESSION_LINE } from './render.js';

/** Whether home creation (pam_mkhomedir) is on in the session stack. */
export async function pamEnabled(ctx: TaskContext): Promise<boolean> {
  const session = await readIfExists(path.join(ctx.paths.pamDir, 'common-session'));
  return session !== undefined && MKHOMEDIR_SESSION_LINE.test(session);
}

/** pam-auth-update for the agent's profile, non-interactive; a failure names the fix. */
export async function pamAuthUpdate(ctx: TaskContext, args: string[], opts: { nice?: number } = {}): Promise<void> {
  const r = await ctx.run({
    file: 'pam-auth-update',
    args: ['--package', ...args],
    env: { DEBIAN_FRONTEND: 'noninteractive' },
    timeoutMs: 30_000,
    ...(opts.nice ? { nice: opts.nice } : {}),
  });
  if (r.exitCode !== 0)
    throw permanent(`pam-auth-update ${args.join(' ')}: ${summarize(r)}`, {
      reason: 'pam-update-failed',
      fix: 'run pam-auth-update by hand to see the problem',
    });
}
