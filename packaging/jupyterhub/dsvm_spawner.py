"""JupyterHub's LocalProcessSpawner, with the user's groups as NSS (sssd) gives them.

JupyterHub before 4.0 gives a single-user server only the supplementary groups
that grp.getgrall() lists with the user as a member. sssd does not enumerate
AD groups (`enumerate = false`, its default and what AD needs), so a domain
user's server gets none of them: with `share.gid: dsvm-users` (0770), alice's
notebooks on the key-mounted share are out of her own server's reach, while
her ssh session (initgroups) reaches them. This spawner asks NSS for the
user's groups directly (getgrouplist(3)), as JupyterHub 4.0 and later do
themselves; with those it changes nothing.

Use, in /etc/jupyterhub/jupyterhub_config.py (after the sys.path line):

    from dsvm_spawner import NssGroupsSpawner
    c.JupyterHub.spawner_class = NssGroupsSpawner
"""

import os
import pwd
import sys

from jupyterhub.spawner import LocalProcessSpawner


def _setuid_with_nss_groups(username):
    user = pwd.getpwnam(username)
    # Looked up before the fork: a forked child of the hub's threaded process
    # must not talk to sssd (NSS is not async-signal-safe).
    groups = os.getgrouplist(username, user.pw_gid)
    home = user.pw_dir

    def preexec():
        os.setgid(user.pw_gid)
        try:
            os.setgroups(groups)
        except Exception as e:  # noqa: BLE001 - as JupyterHub's own: log, start without them
            print("Failed to set groups %s" % e, file=sys.stderr)
        os.setuid(user.pw_uid)
        try:
            os.chdir(home)
        except OSError:
            os.chdir("/")

    return preexec


class NssGroupsSpawner(LocalProcessSpawner):
    """LocalProcessSpawner whose servers get every group NSS knows for the user."""

    def make_preexec_fn(self, name):
        return _setuid_with_nss_groups(name)
