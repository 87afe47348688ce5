import { execa } from 'execa';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';

/**
 * The hub files in packaging/jupyterhub/ are what the README documents and
 * what the VM test's cloud-init writes (test/e2e/lib/jupyterhub.sh): the
 * config is the README's snippet byte for byte, and the unit starts the hub
 * as root on exactly that config path.
 */
const dir = path.resolve(import.meta.dirname, '../../../packaging/jupyterhub');
const HUB_CONFIG_PATH = '/etc/jupyterhub/jupyterhub_config.py';

t.test("jupyterhub_config.py is the README's hub config, byte for byte", async (t) => {
  const readme = await readFile(path.join(dir, 'README.md'), 'utf8');
  const config = await readFile(path.join(dir, 'jupyterhub_config.py'), 'utf8');
  const section = readme.slice(readme.indexOf('## The hub config'));
  const block = /```python\n([\s\S]*?)```/.exec(section)?.[1];
  t.ok(block, 'the README has a python block under "The hub config"');
  t.equal(config, block);
  t.match(config, /c\.Spawner\.pre_spawn_hook = dsvm_agent_pre_spawn_hook/);
  t.match(section, HUB_CONFIG_PATH, 'the README names where the DSVM keeps it');
});

t.test('jupyterhub.service runs the hub as root on the DSVM config path', async (t) => {
  const unit = await readFile(path.join(dir, 'jupyterhub.service'), 'utf8');
  const settings = new Map(
    unit
      .split('\n')
      .filter((l) => /^[A-Za-z]+=/.test(l))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const),
  );
  t.equal(settings.get('User'), 'root', "PAM login for every user and the agent's root-only socket need root");
  t.equal(settings.get('ExecStart'), `/usr/bin/jupyterhub -f ${HUB_CONFIG_PATH}`);
  t.equal(settings.get('WantedBy'), 'multi-user.target');
  const verify = await execa('systemd-analyze', ['verify', path.join(dir, 'jupyterhub.service')], { reject: false });
  // Without jupyterhub installed, verify names only the missing binary; any other complaint is the unit's.
  const complaints = verify.stderr.split('\n').filter((l) => l.trim() && !/\/usr\/bin\/jupyterhub/.test(l));
  t.same(complaints, [], 'systemd-analyze verify has nothing else to say');
});
