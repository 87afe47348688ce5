"""JupyterHub pre_spawn_hook that prepares the user's notebooks with dsvm-agent.

JupyterHub (2.2 and later) opens no PAM session by default, so the pam_exec
hook never runs for Hub logins. This hook does the same work before each
spawn instead. It never raises and never waits longer than its own timeout:
an exception in a pre_spawn_hook aborts the spawn, and the Hub applies no
timeout of its own to the hook.

Use, in /etc/jupyterhub/jupyterhub_config.py:

    import sys
    sys.path.insert(0, "/usr/share/dsvm-agent/jupyterhub")
    from dsvm_agent_hook import dsvm_agent_pre_spawn_hook
    c.Spawner.pre_spawn_hook = dsvm_agent_pre_spawn_hook

The Hub must run as root (the DSVM default): the daemon's socket is
root-only and `dsvm-agent login` refuses otherwise.

Two ways to the same work, in this order:
- the running daemon, asked over its control socket exactly as
  `dsvm-agent login` asks it (src/agent/ipc.ts: one JSON line each way).
  Starting `dsvm-agent login` costs a Node start and the CLI's load (about
  80 ms of every spawn, bench/jupyterhub.ts) only to forward one line; the
  Hub already runs an event loop that can send it. Who may connect is still
  decided by the kernel: the socket is root's, mode 0600.
- `dsvm-agent login --user NAME --json` when no daemon listens: the agent
  then does the work in its own process, within its own bound.
"""

import asyncio
import errno
import json
import logging
import os
import signal
import time

# The agent bounds itself by workspace.loginTimeoutMs (default 3 s); this is
# the hook's own backstop in case the agent cannot even start.
DSVM_AGENT = "/usr/sbin/dsvm-agent"
DAEMON_SOCKET = "/run/dsvm-agent/agent.sock"
TIMEOUT_SECONDS = 5.0
# The daemon answers this much before the hook gives up, so its answer
# (done, or "pending" while it finishes in the background) has time to
# travel back. The daemon also caps its wait to its own loginTimeoutMs.
REPLY_MARGIN_MS = 100
# The daemon's own limits (src/agent/ipc.ts): an answer longer than this is refused.
MAX_ANSWER_BYTES = 1024 * 1024

# connect(2) failures that mean "no daemon to ask" (as isDaemonAbsent in
# src/agent/ipc.ts): no socket file, a dead daemon's socket left behind, not
# a socket, or not root (the agent binary then says why).
_DAEMON_ABSENT = {errno.ENOENT, errno.ECONNREFUSED, errno.ENOTSOCK, errno.EACCES, errno.EPERM}

_log = logging.getLogger("dsvm_agent_hook")


class _DaemonAbsent(Exception):
    """No daemon listens on the socket: the agent binary does the work."""


def _exit_code(outcome):
    """What `dsvm-agent login` would exit with for this outcome (src/tasks/workspace/exit-code.ts)."""
    status = outcome.get("status") if isinstance(outcome, dict) else None
    if status in ("done", "skipped"):
        return 0
    if status in ("partial", "pending"):
        return 3
    return 1


def _report(log, username, code, outcome, ms, detail=""):
    # "via" says whether the daemon answered or the agent did the work itself (no daemon listening).
    via = outcome.get("via", "?") if isinstance(outcome, dict) else "?"
    message = outcome.get("message", "") if isinstance(outcome, dict) else ""
    if code == 0:
        log.info("dsvm-agent login %s: done via %s in %.0f ms: %s", username, via, ms, message)
    elif code == 3:
        log.info("dsvm-agent login %s: not finished yet via %s in %.0f ms (finished in the background): %s", username, via, ms, message)
    elif via == "daemon":
        log.warning("dsvm-agent login %s: %s via daemon in %.0f ms: %s", username, outcome.get("status"), ms, message)
    else:
        log.warning("dsvm-agent login %s exited %s via %s in %.0f ms: %s %s", username, code, via, ms, message, detail)


async def _ask_daemon(username, socket_path, deadline_ms):
    """One `login` request over the daemon's socket; its outcome with "via": "daemon".

    Raises _DaemonAbsent when nobody listens. The caller bounds the wait:
    a daemon that has the request finishes the work in the background.
    """
    try:
        reader, writer = await asyncio.open_unix_connection(socket_path, limit=MAX_ANSWER_BYTES)
    except OSError as e:
        if e.errno in _DAEMON_ABSENT:
            raise _DaemonAbsent(str(e)) from e
        raise
    try:
        request = {"op": "login", "user": username, "service": "jupyterhub", "deadlineMs": deadline_ms}
        writer.write(json.dumps(request).encode("utf-8") + b"\n")
        line = await reader.readline()
    finally:
        writer.close()
    try:
        answer = json.loads(line.decode("utf-8", "replace"))
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
        # As `dsvm-agent login` takes a garbled or missing answer: the daemon has the request.
        what = "is not valid JSON" if line else "did not come (the daemon closed the connection)"
        return {"via": "daemon", "user": username, "status": "pending", "reason": "deadline",
                "message": "the daemon's answer on %s %s; it finishes in the background" % (socket_path, what)}
    if not answer["ok"] or not isinstance(answer.get("result"), dict):
        return {"via": "daemon", "user": username, "status": "failed", "reason": "daemon-error",
                "message": "the daemon refused the request: %s" % answer.get("error", "no result")}
    return {"via": "daemon", **answer["result"]}


async def run_agent(username, agent=None, timeout=TIMEOUT_SECONDS, logger=None):
    """Run `dsvm-agent login --user USERNAME --json`; return its outcome (a dict) or None.

    The way when no daemon listens (the agent does the work in its own
    process); prepare_workspace tries the daemon first.
    """
    log = logger or _log
    agent = agent or DSVM_AGENT
    started = time.monotonic()
    proc = None
    try:
        # argv only, no shell: the name is never parsed by anything but the agent.
        proc = await asyncio.create_subprocess_exec(
            agent, "login", "--user", username, "--json",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # Its own process group, so a timeout kills everything it started.
            start_new_session=True,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        outcome = None
        try:
            outcome = json.loads(out.decode("utf-8", "replace") or "null")
        except ValueError:
            pass
        _report(log, username, proc.returncode, outcome, (time.monotonic() - started) * 1000, err.decode("utf-8", "replace").strip())
        return outcome
    except asyncio.TimeoutError:
        log.warning("dsvm-agent login %s: no answer within %.1f s; spawning anyway", username, timeout)
        if proc is not None and proc.returncode is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
                # Reap it, so no zombie is left behind in the Hub.
                await asyncio.wait_for(proc.wait(), 1.0)
            except (ProcessLookupError, asyncio.TimeoutError):
                pass
        return None
    except Exception as e:  # noqa: BLE001 - a failure here must never abort the spawn
        log.warning("dsvm-agent login %s failed after %.0f ms: %s; spawning anyway", username, (time.monotonic() - started) * 1000, e)
        return None


async def prepare_workspace(username, agent=None, timeout=TIMEOUT_SECONDS, logger=None, socket_path=None):
    """Prepare USERNAME's workspace; return the agent's outcome (a dict with "via") or None.

    Asks the daemon over its socket; with no daemon listening, runs the
    agent (run_agent) in the time left. `logger` defaults to this module's;
    the pre_spawn_hook passes the Hub's own (spawner.log), so every line
    lands in the Hub's log with its format and level. A module logger
    without handlers would show only warnings, bare, on stderr (Python's
    last-resort handler). `agent` and `socket_path` default to the
    module's DSVM_AGENT and DAEMON_SOCKET, read at each call.
    """
    log = logger or _log
    socket_path = socket_path or DAEMON_SOCKET
    started = time.monotonic()
    try:
        deadline_ms = max(0, int(timeout * 1000) - REPLY_MARGIN_MS)
        outcome = await asyncio.wait_for(_ask_daemon(username, socket_path, deadline_ms), timeout)
    except _DaemonAbsent:
        left = timeout - (time.monotonic() - started)
        return await run_agent(username, agent=agent, timeout=max(left, 0.1), logger=log)
    except asyncio.TimeoutError:
        log.warning("dsvm-agent login %s: no answer within %.1f s; spawning anyway", username, timeout)
        return None
    except Exception as e:  # noqa: BLE001 - a failure here must never abort the spawn
        log.warning("dsvm-agent login %s failed after %.0f ms: %s; spawning anyway", username, (time.monotonic() - started) * 1000, e)
        return None
    _report(log, username, _exit_code(outcome), outcome, (time.monotonic() - started) * 1000)
    return outcome


async def dsvm_agent_pre_spawn_hook(spawner):
    """`c.Spawner.pre_spawn_hook`: prepare /data/workspace/<user>/notebooks and ~/notebooks/remote."""
    log = _log
    try:
        log = getattr(spawner, "log", None) or _log
        await prepare_workspace(spawner.user.name, logger=log)
    except Exception as e:  # noqa: BLE001
        log.warning("dsvm-agent pre_spawn_hook: %s", e)
