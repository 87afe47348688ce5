/**
 * The command line's contract: `--help` on every command, and the exit codes
 * 0 ok, 1 failed, 2 bad usage or bad config, 3 not ready. The help and usage
 * tables call `main()` in this process (a child per case would take seconds
 * each); the rest runs the CLI from source in a child process, as a person
 * or a script sees it, and repeats a few of the table's cases that way.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import t from 'tap';
import { main } from '../../../src/app/cli.js';
import { VERSION } from '../../../src/agent/version.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const ENTRY = ['--import', pathToFileURL(path.join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href, path.join(ROOT, 'src/main.ts')];

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[]): Promise<Outcome> {
  // The agent's own variables would change what a case means.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DSVM_AGENT_')));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...ENTRY, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** main() in this process, with what it writes captured. */
async function inProcess(args: string[]): Promise<Outcome> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { out: (s) => void (stdout += s), err: (s) => void (stderr += s) });
  return { code, stdout, stderr };
}

/** A temp tree for --root holding config.yaml; the agent finds no daemon there. */
async function rootWith(config: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'dsvm-cli-'));
  await mkdir(path.join(dir, 'etc', 'dsvm-agent'), { recursive: true });
  await writeFile(path.join(dir, 'etc', 'dsvm-agent', 'config.yaml'), config);
  return dir;
}

// Only the first-boot verdict matters to these cases: the checks that would
// ask DNS or system services are off, so the outcome is the same on any host.
const quietHealth = (grace: number) =>
  `  initializingGraceSec: ${grace}\n  unhealthyOn: [domain-trust]\n  checks:\n` +
  ['identity-lookup', 'sssd', 'share-mounted', 'share-quota', 'clock', 'disk-space']
    .map((id) => `    ${id}: { enabled: false }\n`)
    .join('');
const goodConfig = (grace: number) =>
  'azure: { imdsEndpoint: http://127.0.0.1:9, managementEndpoint: https://127.0.0.1:9 }\n' +
  'domain: { name: contoso.test, joinUser: dsvm-join, joinPassword: { file: /etc/dsvm-agent/join-password } }\n' +
  `health:\n${quietHealth(grace)}`;

const helpCases: { args: string[]; usage: RegExp }[] = [
  { args: ['--help'], usage: /^Usage: dsvm-agent \[options\] \[command\]/m },
  { args: ['help'], usage: /^Usage: dsvm-agent \[options\] \[command\]/m },
  { args: ['run', '--help'], usage: /^Usage: dsvm-agent run \[options\]/m },
  { args: ['provision', '--help'], usage: /^Usage: dsvm-agent provision \[options\]/m },
  { args: ['plan', '--help'], usage: /^Usage: dsvm-agent plan \[options\]/m },
  { args: ['login', '--help'], usage: /^Usage: dsvm-agent login \[options\][\s\S]*--user <name>/m },
  { args: ['help', 'login'], usage: /^Usage: dsvm-agent login \[options\]/m },
  { args: ['pam-session', '--help'], usage: /^Usage: dsvm-agent pam-session \[options\]/m },
  { args: ['status', '--help'], usage: /^Usage: dsvm-agent status \[options\][\s\S]*--json/m },
  { args: ['deprovision', '--help'], usage: /^Usage: dsvm-agent deprovision \[options\][\s\S]*--leave-domain/m },
  { args: ['config', '--help'], usage: /^Usage: dsvm-agent config \[options\] \[command\]/m },
  { args: ['config', 'check', '--help'], usage: /^Usage: dsvm-agent config check \[options\] \[file\]/m },
  { args: ['version', '--help'], usage: /^Usage: dsvm-agent version \[options\]/m },
];

t.test('--help on every command exits 0 and prints its usage on stdout', async (t) => {
  for (const c of helpCases) {
    const r = await inProcess(c.args);
    t.equal(r.code, 0, `${c.args.join(' ')}: exit 0`);
    t.match(r.stdout, c.usage, `${c.args.join(' ')}: usage`);
    t.equal(r.stderr, '', `${c.args.join(' ')}: nothing on stderr`);
  }
});

const usageCases: { name: string; args: string[]; stderr: RegExp }[] = [
  { name: 'no command at all', args: [], stderr: /^Usage: dsvm-agent \[options\] \[command\]/m },
  { name: 'config without a subcommand', args: ['config'], stderr: /^Usage: dsvm-agent config \[options\] \[command\]/m },
  { name: 'unknown command', args: ['bogus'], stderr: /^error: unknown command 'bogus'/m },
  { name: 'unknown config subcommand', args: ['config', 'bogus'], stderr: /^error: unknown command 'bogus'/m },
  { name: 'login without --user', args: ['login'], stderr: /^error: required option '-u, --user <name>' not specified/m },
  { name: 'unknown option', args: ['status', '--bogus'], stderr: /^error: unknown option '--bogus'/m },
  {
    name: 'unknown log level',
    args: ['--log-level', 'loud', 'status'],
    stderr: /^error: option '--log-level <level>' argument 'loud' is invalid/m,
  },
];

t.test('usage errors exit 2 with the reason or the help on stderr', async (t) => {
  for (const c of usageCases) {
    const r = await inProcess(c.args);
    t.equal(r.code, 2, `${c.name}: exit 2`);
    t.match(r.stderr, c.stderr, `${c.name}: says why`);
    t.equal(r.stdout, '', `${c.name}: nothing on stdout`);
  }
});

t.test('as a process: help 0, missing command 2, version 0', async (t) => {
  const help = await cli(['--help']);
  t.equal(help.code, 0, '--help: exit 0');
  t.match(help.stdout, /^Usage: dsvm-agent \[options\] \[command\]/m);
  const none = await cli([]);
  t.equal(none.code, 2, 'no command: exit 2');
  t.match(none.stderr, /^Usage: dsvm-agent \[options\] \[command\]/m, 'no command: the help, on stderr');
  t.equal(none.stdout, '');

  const v = await cli(['version']);
  t.equal(v.code, 0, 'version: exit 0');
  // The runtime is the one running the command (the test's own node here; the package's in a .deb).
  t.equal(v.stdout, `dsvm-agent ${VERSION} (Node.js ${process.version})\n`);
  const flag = await inProcess(['--version']);
  t.equal(flag.code, 0, '--version: exit 0');
  t.match(flag.stdout, /^\S+\n$/);
});

t.test('config check: 0 when valid, 2 with every problem when not', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'dsvm-cli-'));
  const good = path.join(dir, 'good.yaml');
  await writeFile(good, goodConfig(1800));
  const ok = await cli(['config', 'check', good]);
  t.equal(ok.code, 0, 'valid: exit 0');
  t.match(ok.stdout, `${good}: valid (domain contoso.test; no share (workspaces are local))`);

  const bad = path.join(dir, 'bad.yaml');
  await writeFile(
    bad,
    [
      'domain:',
      '  name: CONTOSO',
      '  joinUser: dsvm-join',
      '  joinPassword: hunter2-secret-value',
      '  computerName: ABCDEFGHIJKLMNOP',
      'share: { account: contosofiles, name: workspace, key: { file: /etc/k }, mountPoint: data/ws }',
      'workspace: { minUid: 1.5 }',
      'extras: {}',
      '',
    ].join('\n'),
  );
  const r = await cli(['config', 'check', bad]);
  t.equal(r.code, 2, 'invalid: exit 2');
  t.equal(r.stdout, '');
  t.equal(
    r.stderr,
    [
      `${bad}: 6 problems`,
      '  domain.name: must be the AD DNS domain name with at least two labels, not the NetBIOS name: write e.g. contoso.com (got "CONTOSO")',
      '  domain.joinPassword: must be a reference to the secret, never the secret itself: use {file: /etc/dsvm-agent/NAME} (root-owned, mode 0600) or {keyVault: {vaultUrl: https://..., name: ...}}, and remove the value from this file',
      '  domain.computerName: is longer than 15 characters (the NetBIOS limit): choose a shorter name or use auto (got "ABCDEFGHIJKLMNOP")',
      '  share.mountPoint: must be an absolute path: write the full path to the mount point, starting with "/" (got "data/ws")',
      '  workspace.minUid: must be a whole number: drop the fraction (got 1.5)',
      '  extras: unknown key: remove it or fix its spelling (known here: identity, azure, domain, share, workspace, health, repair, scheduledEvents, sweep, logging)',
      '',
    ].join('\n'),
    'every problem, each with its key path, value and fix',
  );
  t.notMatch(r.stderr, /hunter2/, 'the secret value is not echoed');

  const missing = await cli(['config', 'check', path.join(dir, 'nope.yaml')]);
  t.equal(missing.code, 2, 'a missing file is a bad config');
  t.match(missing.stderr, /nope\.yaml: 1 problem\n {2}\(file\): does not exist: write it/);
});

t.test('status: 3 while first boot is pending, 1 when it is overdue, 2 with a bad config', async (t) => {
  const pending = await cli(['--root', await rootWith(goodConfig(1800)), 'status']);
  t.equal(pending.code, 3, `Initializing: exit 3 (${pending.stderr})`);
  t.match(pending.stdout, /^health: Initializing - first boot in progress/);

  const overdue = await cli(['--root', await rootWith(goodConfig(0)), 'status', '--json']);
  t.equal(overdue.code, 1, `Unhealthy: exit 1 (${overdue.stderr})`);
  t.match(JSON.parse(overdue.stdout), { ApplicationHealthState: 'Unhealthy', source: 'local' });

  const bad = await cli(['--root', await rootWith('domain: { name: contoso.test }\n'), 'status']);
  t.equal(bad.code, 2, 'bad config: exit 2');
  t.match(bad.stderr, /domain\.joinPassword: is required/);
});
