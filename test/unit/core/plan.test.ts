// `plan` against the example config inside a temp root: it reports every
// first-boot task and writes nothing (the tree hashes the same before and
// after), and no secret reaches its output, its children's argv or state.
import t from 'tap';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseDocument } from 'yaml';
import { firstBootTasks } from '../../../src/app/capabilities.js';
import { planTasks } from '../../../src/agent/task.js';
import { makeTestContext } from '../../helpers/context.js';
import { hashTree } from '../../helpers/tree.js';

const JOIN_SECRET = 'Plan-Join-Secret-8c1e';
const STORAGE_KEY = 'cGxhbi1zdG9yYWdlLWtleS1zZWNyZXQtdmFsdWU=';

/** The example config, pointed at a temp root, loopback-only endpoints and file secrets. */
async function exampleRoot(): Promise<{ root: string; configFile: string }> {
  const root = await mkdtemp(path.join(tmpdir(), 'dsvm-plan-'));
  const doc = parseDocument(await readFile('packaging/config.example.yaml', 'utf8'));
  doc.setIn(['azure'], { imdsEndpoint: 'http://127.0.0.1:9', managementEndpoint: 'https://127.0.0.1:9' });
  doc.setIn(['domain', 'name'], 'contoso.test');
  doc.setIn(['domain', 'joinPassword'], { file: '/etc/dsvm-agent/join-password' });
  doc.setIn(['share', 'key'], { file: '/etc/dsvm-agent/storage-key' });
  const etc = path.join(root, 'etc/dsvm-agent');
  await mkdir(etc, { recursive: true });
  const configFile = path.join(etc, 'config.yaml');
  await writeFile(configFile, doc.toString());
  await writeFile(path.join(etc, 'join-password'), JOIN_SECRET, { mode: 0o600 });
  await writeFile(path.join(etc, 'storage-key'), STORAGE_KEY, { mode: 0o600 });
  await chmod(path.join(etc, 'join-password'), 0o600);
  await mkdir(path.join(root, 'var/lib'), { recursive: true });
  await writeFile(path.join(root, 'etc/fstab'), '# static file system information\n');
  return { root, configFile };
}

/** `plan --json` on a temp root, through `entry` (the built CLI or the source tree). */
function runPlan(entry: readonly string[], root: string, configFile: string): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [...entry, '--root', root, '--config', configFile, 'plan', '--json'], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
  });
}

t.test('plan on the example config in a temp root writes nothing', async (t) => {
  if (!existsSync('dist/cli.mjs')) {
    t.fail('dist/cli.mjs missing: run `make build` first');
    return;
  }
  const { root, configFile } = await exampleRoot();
  const before = await hashTree(root);
  const r = runPlan(['dist/cli.mjs'], root, configFile);
  const after = await hashTree(root);
  t.equal(after, before, 'the temp root is byte-identical after plan');
  t.equal(r.status, 0, `plan exits 0 (stderr: ${r.stderr.slice(0, 500)})`);
  const plan = JSON.parse(r.stdout) as { tasks: { id: string; status: string }[] };
  t.same(
    plan.tasks.map((x) => x.id),
    firstBootTasks.map((x) => x.id),
    'every first-boot task is reported',
  );
  for (const secret of [JOIN_SECRET, STORAGE_KEY]) {
    t.notOk(r.stdout.includes(secret) || r.stderr.includes(secret), 'no secret in plan output');
  }
  t.notOk(existsSync(path.join(root, 'var/lib/dsvm-agent/state.json')), 'no state written');
});

t.test('plan with a corrupt state file leaves it, and the whole tree, as it was; every task is pending', async (t) => {
  const { root, configFile } = await exampleRoot();
  const stateDir = path.join(root, 'var/lib/dsvm-agent');
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  await writeFile(path.join(stateDir, 'state.json'), '{"version":1,"vmId":"trunc', { mode: 0o600 });
  const before = await hashTree(root);
  // From the source tree (the code under test), not dist/.
  const r = runPlan(['--import', 'tsx', 'src/main.ts'], root, configFile);
  const after = await hashTree(root);
  t.equal(after, before, 'the temp root is byte-identical after plan (state.json not moved aside)');
  t.equal(r.status, 0, `plan exits 0 (stderr: ${r.stderr.slice(0, 500)})`);
  t.match(r.stderr, /state file .*state\.json is corrupt .*left in place/, 'it says the state file is corrupt');
  const plan = JSON.parse(r.stdout) as { tasks: { id: string; status: string; pending?: boolean }[] };
  t.same(
    plan.tasks.map((x) => x.id),
    firstBootTasks.map((x) => x.id),
    'every first-boot task is reported',
  );
  const runs = plan.tasks.filter((x) => x.status !== 'skipped');
  t.ok(runs.length > 0, 'some task runs on this config');
  t.same(
    runs.filter((x) => x.pending !== true).map((x) => `${x.id}: ${x.status}`),
    [],
    'no first boot recorded: every task that runs is pending',
  );
});

t.test('no secret in argv, logs or state after a full plan run', async (t) => {
  const { root } = await exampleRoot();
  const config = {
    domain: { name: 'contoso.test', joinUser: 'dsvm-join', joinPassword: { file: '/etc/dsvm-agent/join-password' } },
    share: { account: 'contosofiles', name: 'workspace', key: { file: '/etc/dsvm-agent/storage-key' }, endpointSuffix: 'contoso.test' },
  };
  // Every command fails as on a machine that is not joined: plan must still report.
  const { ctx, runner, logLines } = await makeTestContext({ root, config });
  ctx.run = async (req) => {
    runner.calls.push(req);
    return { exitCode: 1, signal: null, stdout: '', stderr: 'not joined', timedOut: false, startError: null, durationMs: 1 };
  };
  const entries = await planTasks(firstBootTasks, ctx);
  t.equal(entries.length, firstBootTasks.length);
  const argv = runner.calls.map((c) => [c.file, ...(c.args ?? [])].join(' ')).join('\n');
  const env = runner.calls.map((c) => JSON.stringify(c.env ?? {})).join('\n');
  for (const secret of [JOIN_SECRET, STORAGE_KEY]) {
    t.notOk(argv.includes(secret), 'no secret in any argv');
    t.notOk(env.includes(secret), "no secret in any child's environment");
    t.notOk(logLines.join('\n').includes(secret), 'no secret in logs');
    t.notOk(JSON.stringify(ctx.state).includes(secret), 'no secret in state');
    t.notOk(JSON.stringify(entries).includes(secret), 'no secret in the plan');
  }
});
