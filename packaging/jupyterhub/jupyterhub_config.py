import sys
sys.path.insert(0, "/usr/share/dsvm-agent/jupyterhub")
from dsvm_agent_hook import dsvm_agent_pre_spawn_hook
c.Spawner.pre_spawn_hook = dsvm_agent_pre_spawn_hook
from dsvm_spawner import NssGroupsSpawner
c.JupyterHub.spawner_class = NssGroupsSpawner
