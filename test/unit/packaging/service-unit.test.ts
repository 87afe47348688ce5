import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';

/**
 * The daemon holds the join password and the storage key in memory, and the
 * watchdog's SIGABRT would dump it: the unit turns core dumps off, because
 * Node cannot (process.setrlimit does not exist). docs/security.md.
 */
const unitFile = path.resolve(import.meta.dirname, '../../../packaging/systemd/dsvm-agent.service');

/** The [Service] section's settings, last assignment wins as in systemd. */
function serviceSettings(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const head = /^\[(.+)\]$/.exec(line);
    if (head) section = head[1]!;
    else if (section === 'Service') {
      const eq = line.indexOf('=');
      if (eq > 0) out.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
    }
  }
  return out;
}

t.test('the service turns core dumps off', async (t) => {
  const settings = serviceSettings(await readFile(unitFile, 'utf8'));
  t.equal(settings.get('LimitCORE'), '0', 'LimitCORE=0 in [Service]');
  t.equal(
    typeof (process as unknown as Record<string, unknown>).setrlimit,
    'undefined',
    'Node still has no setrlimit: the unit stays the guard',
  );
});

t.test(
  'systemd-analyze verify accepts the unit',
  { skip: existsSync('/usr/bin/systemd-analyze') ? false : 'systemd-analyze not installed' },
  async (t) => {
    const dir = await mkdtemp(path.join(tmpdir(), 'service-unit-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    // The packaged runtime path does not exist on a build machine: point ExecStart at this Node.
    const text = (await readFile(unitFile, 'utf8')).replace(/^ExecStart=\S+/m, `ExecStart=${process.execPath}`);
    const verify = async (body: string) => {
      const file = path.join(dir, 'dsvm-agent.service');
      await writeFile(file, body);
      return spawnSync('systemd-analyze', ['verify', '--man=no', file], { encoding: 'utf8' });
    };
    const good = await verify(text);
    t.notMatch(good.stderr, /Failed to parse|Unknown key|Invalid|Unknown section/i, `no complaint (${good.stderr.trim()})`);
    // The same check must see a limit systemd cannot read, or it proves nothing.
    const bad = await verify(text.replace(/^LimitCORE=0$/m, 'LimitCORE=none'));
    t.match(bad.stderr, /Failed to parse resource value/, 'a broken LimitCORE is reported');
  },
);
