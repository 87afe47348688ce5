import sys
sys.path.insert(0, "/usr/share/dsvm-agent/jupyterhub")
from dsvm_agent_hook import dsvm_agent_pre_spawn_hook
c.Spawner.pre_spawn_hook = dsvm_agent_pre_spawn_hook
from dsvm_spawner import NssGroupsSpawner
c.JupyterHub.spawner_class = NssGroupsSpawner
# Who may log in is PAM's answer (the account step: sssd's access control, domain.allowGroups), as
# JupyterHub 3 and 4 do by default; JupyterHub 5 (Debian 13) lets nobody in unless told to.
from jupyterhub.auth import Authenticator
if "allow_all" in Authenticator.class_trait_names():
    c.Authenticator.allow_all = True
