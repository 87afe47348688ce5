"""JupyterHub pre_spawn_hook that prepares the user's notebooks with dsvm-agent.

JupyterHub (2.2 and later) opens no PAM session by default, so the pam_exec
hook never runs for Hub logins. This hook runs `dsvm-agent login --user NAME`
before each spawn instead. It never raises and never waits longer than its
own timeout: an exception in a pre_spawn_hook aborts the spawn, and the Hub
applies no timeout of its own to the hook.

Use, in /etc/jupyterhub/jupyterhub_config.py:

    import sys
    sys.path.insert(0, "/usr/share/dsvm-agent/jupyterhub")
    from dsvm_agent_hook import dsvm_agent_pre_spawn_hook
    c.Spawner.pre_spawn_hook = dsvm_agent_pre_spawn_hook

The Hub must run as root (the DSVM default); `dsvm-agent login` refuses
otherwise.
"""

import asyncio
import json
import logging
import os
import signal
import time

# The agent bounds itself by workspace.loginTimeoutMs (default 3 s); this is
# the hook's own backstop in case the agent cannot even start.
DSVM_AGENT = "/usr/sbin/dsvm-agent"
TIMEOUT_SECONDS = 5.0

_log = logging.getLogger("dsvm_agent_hook")


async def prepare_workspace(username, agent=DSVM_AGENT, timeout=TIMEOUT_SECONDS, logger=None):
    """Run `dsvm-agent login --user USERNAME --json`; return its outcome (a dict) or None.

    `logger` defaults to this module's; the pre_spawn_hook passes the Hub's
    own (spawner.log), so every line lands in the Hub's log with its format
    and level. A module logger without handlers would show only warnings,
    bare, on stderr (Python's last-resort handler).
    """
    log = logger or _log
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
        ms = (time.monotonic() - started) * 1000
        # "via" says whether the daemon answered or the agent did the work itself (no daemon listening).
        via = outcome.get("via", "?") if isinstance(outcome, dict) else "?"
        message = outcome.get("message", "") if isinstance(outcome, dict) else ""
        if proc.returncode == 0:
            log.info("dsvm-agent login %s: done via %s in %.0f ms: %s", username, via, ms, message)
        elif proc.returncode == 3:
            log.info("dsvm-agent login %s: not finished yet via %s in %.0f ms (finished in the background): %s", username, via, ms, message)
        else:
            log.warning("dsvm-agent login %s exited %s via %s in %.0f ms: %s %s", username, proc.returncode, via, ms, message, err.decode("utf-8", "replace").strip())
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


async def dsvm_agent_pre_spawn_hook(spawner):
    """`c.Spawner.pre_spawn_hook`: prepare /data/workspace/<user>/notebooks and ~/notebooks/remote."""
    log = _log
    try:
        log = getattr(spawner, "log", None) or _log
        await prepare_workspace(spawner.user.name, logger=log)
    except Exception as e:  # noqa: BLE001
        log.warning("dsvm-agent pre_spawn_hook: %s", e)
