import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { createLogger } from '../../../src/agent/log.js';
import { makePaths } from '../../../src/agent/paths.js';
import { Redactor } from '../../../src/agent/redact.js';
import { createServiceManager } from '../../../src/agent/service-manager.js';
import { FakeRunner } from '../../helpers/fake-runner.js';

async function setup(opts: { systemd: boolean }) {
  const root = await mkdtemp(path.join(tmpdir(), 'dsvm-agent-services-'));
  const paths = makePaths(root);
  if (opts.systemd) await mkdir(paths.systemdRunDir, { recursive: true });
  const runner = new FakeRunner([
    { file: 'systemctl', args: ['is-active', '--quiet', 'sssd.service'], result: { exitCode: 3 } },
    { file: 'systemctl', args: ['restart', 'sssd.service'], result: { exitCode: 1, stderr: 'Job for sssd.service failed.' } },
    { file: 'systemctl' },
    { file: '/usr/sbin/sssd', args: ['-D', '--logger=files'] },
  ]);
  const lines: string[] = [];
  const log = createLogger({ level: 'debug', redactor: new Redactor(), journald: true, write: (l) => lines.push(l) });
  const services = createServiceManager({ run: runner.run, paths, log });
  const pidFile = paths.under('/run/sssd.pid');
  await mkdir(path.dirname(pidFile), { recursive: true });
  return { root, paths, runner, services, pidFile, lines };
}

t.test('systemd when /run/systemd/system exists (the sd_booted marker)', async (t) => {
  const { services, runner } = await setup({ systemd: true });
  t.equal(services.kind, 'systemd');
  t.equal(await services.isActive('sssd.service'), false, 'is-active exit 3: inactive');
  await services.start('sssd.service');
  await services.enable('sssd.service');
  await services.daemonReload();
  await t.rejects(services.restart('sssd.service'), /systemctl restart sssd\.service: .*Job for sssd\.service failed/);
  t.same(runner.argv(), [
    'systemctl is-active --quiet sssd.service',
    'systemctl start sssd.service',
    'systemctl enable sssd.service',
    'systemctl daemon-reload',
    'systemctl restart sssd.service',
  ]);
  t.same(runner.unexpected, []);
});

t.test('direct without systemd: starts sssd itself, tracks it by its pid file', async (t) => {
  const { services, runner, pidFile } = await setup({ systemd: false });
  t.equal(services.kind, 'direct');
  t.equal(await services.isActive('sssd.service'), false, 'no pid file: not running');
  await services.start('sssd.service');
  t.same(runner.argv(), ['/usr/sbin/sssd -D --logger=files'], 'started as sssd does without systemd');

  await writeFile(pidFile, `${process.pid}\n`);
  t.equal(await services.isActive('sssd.service'), true, 'a live pid: running');
  await services.start('sssd.service');
  t.equal(runner.calls.length, 1, 'already running: not started twice');

  await writeFile(pidFile, '1\n');
  t.equal(await services.isActive('sssd'), false, 'pid 1 is never taken for sssd');
  await writeFile(pidFile, 'garbage\n');
  t.equal(await services.isActive('sssd'), false, 'an unreadable pid file: not running');
});

t.test('direct stop ends the process the pid file names', async (t) => {
  const { services, pidFile } = await setup({ systemd: false });
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_code, signal) => r(signal)));
  await writeFile(pidFile, `${child.pid}\n`);
  t.equal(await services.isActive('sssd.service'), true);
  await services.stop('sssd.service');
  t.equal(await exited, 'SIGTERM', 'stopped with SIGTERM');
  t.equal(await services.isActive('sssd.service'), false);
});

t.test('direct: units the agent does not run itself are left alone, and said so', async (t) => {
  const { services, runner, lines } = await setup({ systemd: false });
  await services.start('dsvm-workspace.mount');
  await services.enable('sssd.service');
  await services.daemonReload();
  t.same(runner.calls, [], 'nothing run');
  t.ok(
    lines.some((l) => l.includes('no service manager here: not starting dsvm-workspace.mount')),
    'the skipped start is logged',
  );
});
