import type { GlobalOptions } from '../../agent/context.js';

/**
 * `dsvm-agent pam-session`: the entry for
 * `session optional pam_exec.so quiet type=open_session /usr/sbin/dsvm-agent pam-session`.
 *
 * pam_exec waits for this process with no timeout, and sshd has already
 * disarmed its login grace timer: whatever happens here, this returns within
 * workspace.loginTimeoutMs and exits 0 (a non-zero exit only produces noise,
 * the session stack marks us optional). Nothing goes to stdout: pam_exec's
 * `stdout` option would show it to the user. Diagnostics go to stderr, which
 * pam_exec discards unless `log=FILE` is set, and to the daemon's journal
 * when the daemon did the work.
 *
 * PAM_USER and PAM_TYPE come from pam_exec; the PAM environment list may
 * carry values the user set, so the name is only a question for NSS, and the
 * worst a forged value can do is prepare another allowed account's own
 * folders, as that account's own login would.
 */
export async function pamSessionCommand(g: GlobalOptions, _opts: unknown): Promise<number> {
  try {
    if (process.env.PAM_TYPE !== 'open_session') return 0;
    const user = process.env.PAM_USER;
    if (!user) {
      process.stderr.write('dsvm-agent pam-session: PAM_USER is not set (run by pam_exec?): nothing to do\n');
      return 0;
    }
    const { requestLogin } = await import('../../tasks/workspace/request.js');
    const service = process.env.PAM_SERVICE;
    const { via, outcome } = await requestLogin({
      user,
      ...(service ? { service } : {}),
      ...(g.root === undefined ? {} : { root: g.root }),
      ...(g.configFile === undefined ? {} : { configFile: g.configFile }),
    });
    if (outcome.status !== 'done' && outcome.status !== 'skipped') {
      process.stderr.write(`dsvm-agent pam-session: ${outcome.status} (${via}): ${outcome.message}\n`);
    }
  } catch (err) {
    process.stderr.write(`dsvm-agent pam-session: ${err instanceof Error ? err.message : String(err)}\n`);
  } finally {
    // Whatever might still hold the event loop (a child that ignored SIGKILL
    // in uninterruptible sleep, a socket), the login must go on.
    setTimeout(() => process.exit(0), 200).unref();
  }
  return 0;
}
