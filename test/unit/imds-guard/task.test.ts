// The imds-guard first-boot task with the one fake runner: what check says,
// what apply runs (the rule set on nft's stdin, atomically), what it writes for
// the next boot, what undo removes, and the errors that name the key and fix.
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { AgentError } from '../../../src/agent/errors.js';
import type { RunRequest } from '../../../src/agent/runner.js';
import { imdsGuardTask, undoImdsGuard } from '../../../src/tasks/imds-guard/index.js';
import { renderGuardScript } from '../../../src/tasks/imds-guard/ruleset.js';
import { imdsGuardCheck } from '../../../src/tasks/imds-guard/check.js';
import { makeTestContext } from '../../helpers/context.js';
import type { FakeCommand } from '../../helpers/fake-runner.js';

const fixture = (name: string): string => readFileSync(`test/fixtures/imds-guard/${name}`, 'utf8');
const KV = { keyVault: { vaultUrl: 'https://kv.vault.azure.net', name: 'dsvm-join' } };
/** The config the fixtures match: 169.254.169.254:80, gids 1234 and 1800000513 (a domain group). */
const GUARDED = {
  azure: { imdsEndpoint: 'http://169.254.169.254', imdsAccess: { allowGroups: [1234, 'dsvm identity users'] } },
};

/** A test context whose join password is a Key Vault reference (the test config's is a file). */
async function kvContext(opts: Parameters<typeof makeTestContext>[0]): ReturnType<typeof makeTestContext> {
  const tc = await makeTestContext(opts);
  tc.ctx.cfg.domain.joinPassword = KV;
  return tc;
}
const getentGroup: FakeCommand = {
  file: 'getent',
  args: ['group', '--', 'dsvm identity users'],
  // sssd answers in lower case: the gid is what counts.
  result: { stdout: 'dsvm identity users:*:1800000513:alice\n' },
};
const listAbsent: FakeCommand = {
  file: 'nft',
  args: ['-j', 'list', 'table', 'inet', 'dsvm_agent'],
  result: { exitCode: 1, stderr: fixture('nft-list-absent.stderr') },
};
const listPresent: FakeCommand = {
  file: 'nft',
  args: ['-j', 'list', 'table', 'inet', 'dsvm_agent'],
  result: { stdout: fixture('nft-list-guard.json') },
};
/** Each script nft -f loaded, read from its file while nft runs (the file is removed afterwards). */
const loaded: string[] = [];
const load: FakeCommand = {
  file: 'nft',
  args: (a) => a[0] === '-f',
  result: (req) => {
    loaded.push(readFileSync(req.args![1]!, 'utf8'));
    return {};
  },
};
const nftMissing: FakeCommand = { file: 'nft', result: { exitCode: null, startError: 'ENOENT' } };

const argv = (calls: RunRequest[]): string[] => calls.map((c) => [c.file, ...(c.args ?? [])].join(' '));

t.test(
  'guard on, nothing installed: check lists every change; apply loads the table from a private file and writes the boot unit',
  async (t) => {
    const { ctx, runner, services, paths } = await kvContext({
      config: GUARDED,
      commands: [{ ...listAbsent, times: 1 }, getentGroup, load, listPresent],
    });
    t.equal(imdsGuardTask.skip?.(ctx), undefined, 'not skipped: the join password comes from Key Vault');
    const found = await imdsGuardTask.check(ctx);
    t.match(
      found.changes.join('\n'),
      /install nftables table inet dsvm_agent: root and 1234, dsvm identity users \(gid 1234, 1800000513\) may reach 169\.254\.169\.254:80/,
    );
    t.match(found.changes.join('\n'), /domain\.joinPassword is read through the managed identity/);
    t.match(found.changes.join('\n'), /write \/etc\/dsvm-agent\/imds-guard\.nft/);
    t.match(found.changes.join('\n'), /write and enable \/etc\/systemd\/system\/dsvm-agent-imds-guard\.service/);
    await imdsGuardTask.apply(ctx, found);
    const loads = runner.calls.filter((c) => c.file === 'nft' && c.args?.[0] === '-f');
    t.equal(loads.length, 1, 'one nft -f transaction');
    t.not(loads[0]?.args?.[1], '-', 'from a file, not stdin (nftables 0.9 cannot open a socket as /dev/stdin)');
    t.notOk(existsSync(path.dirname(loads[0]!.args![1]!)), 'its private directory is gone afterwards');
    const script = renderGuardScript({ address: '169.254.169.254', port: 80, gids: [1234, 1800000513] });
    t.equal(loaded.at(-1), script, 'the rule set is what nft loaded');
    t.equal(await readFile(path.join(paths.configDir, 'imds-guard.nft'), 'utf8'), script, 'the boot rule file is the same script');
    const unit = await readFile(path.join(paths.systemdUnitDir, 'dsvm-agent-imds-guard.service'), 'utf8');
    t.match(unit, /ExecStart=\/usr\/sbin\/nft -f \/etc\/dsvm-agent\/imds-guard\.nft/, 'the unit loads it by its system path');
    t.match(unit, /After=nftables\.service/, 'after nftables.service, whose flush ruleset would wipe it');
    t.match(unit, /Before=network-pre\.target/, 'before the network');
    t.same(services.actions, ['daemon-reload', 'enable dsvm-agent-imds-guard.service']);
    t.same(
      ctx.state.facts.imdsGuard,
      { address: '169.254.169.254', port: 80, gids: [1234, 1800000513] },
      'state records what was installed',
    );
    const again = await imdsGuardTask.check(ctx);
    t.same(again.changes, [], 'converged: the listed table (fixture) matches, the files are current');
    t.same(runner.unexpected, [], 'no unexpected command');
  },
);

t.test('guard on, table flushed by a firewall reload: only the table is reloaded', async (t) => {
  const first = await kvContext({ config: GUARDED, commands: [{ ...listAbsent, times: 1 }, getentGroup, load, listPresent] });
  await imdsGuardTask.apply(first.ctx, await imdsGuardTask.check(first.ctx));
  // The same machine later: files in place, the kernel's table gone.
  const later = await kvContext({ root: first.root, config: GUARDED, commands: [listAbsent, getentGroup] });
  const found = await imdsGuardTask.check(later.ctx);
  t.same(found.changes.length, 1, `one change: ${found.changes.join('; ')}`);
  t.match(found.changes[0] ?? '', /^install nftables table inet dsvm_agent/);
  t.same(later.runner.unexpected, []);
});

t.test('the errors name the key and the fix', async (t) => {
  const cases: { name: string; config: Record<string, unknown>; commands: FakeCommand[]; want: RegExp; fix: RegExp }[] = [
    {
      name: 'nft not installed while the guard is on',
      config: GUARDED,
      commands: [nftMissing],
      want: /nft is not installed, and the IMDS guard is on \(domain\.joinPassword is read through the managed identity/,
      fix: /apt-get install nftables/,
    },
    {
      name: 'an allowed group NSS does not know',
      config: { azure: { imdsEndpoint: 'http://169.254.169.254', imdsAccess: { allowGroups: ['dsvm-idenity'] } } },
      commands: [listAbsent, { file: 'getent', result: { exitCode: 2 } }],
      want: /azure\.imdsAccess\.allowGroups\[0\]: no group "dsvm-idenity"/,
      fix: /numeric gid/,
    },
    {
      name: 'a gid written in quotes',
      config: { azure: { imdsEndpoint: 'http://169.254.169.254', imdsAccess: { allowGroups: ['2001'] } } },
      commands: [listAbsent],
      want: /allowGroups\[0\]: "2001" is a quoted number/,
      fix: /without quotes/,
    },
  ];
  for (const c of cases) {
    const { ctx } = await kvContext({ config: c.config, commands: c.commands });
    const err = await imdsGuardTask.check(ctx).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.ok(err instanceof AgentError && err.kind === 'permanent', `${c.name}: a permanent error`);
    t.match((err as AgentError).message, c.want, `${c.name}: message`);
    t.match((err as AgentError).fix ?? '', c.fix, `${c.name}: fix`);
  }
});

t.test('skip and removal follow azure.imdsAccess.restrict', async (t) => {
  const fileSecrets = await makeTestContext({ commands: [] });
  t.match(imdsGuardTask.skip?.(fileSecrets.ctx) ?? '', /no secret is read through the managed identity/, 'auto with file secrets: skipped');
  t.same(fileSecrets.runner.calls, [], 'and nothing ran');

  const off = await kvContext({
    config: { azure: { imdsAccess: { restrict: false } } },
    commands: [listPresent, { file: 'nft', args: ['delete', 'table', 'inet', 'dsvm_agent'] }],
  });
  t.match(imdsGuardTask.skip?.(off.ctx) ?? '', /restrict is false/, 'false: skipped when never installed');
  off.ctx.state.facts.imdsGuard = { address: '169.254.169.254', port: 80, gids: [] };
  await mkdir(off.paths.systemdUnitDir, { recursive: true });
  await writeFile(path.join(off.paths.systemdUnitDir, 'dsvm-agent-imds-guard.service'), 'x');
  await writeFile(path.join(off.paths.configDir, 'imds-guard.nft'), 'x');
  t.equal(imdsGuardTask.skip?.(off.ctx), undefined, 'false after it was installed: runs, to remove it');
  const found = await imdsGuardTask.check(off.ctx);
  t.match(found.changes.join('\n'), /remove nftables table inet dsvm_agent: azure\.imdsAccess\.restrict is false/);
  await imdsGuardTask.apply(off.ctx, found);
  t.ok(argv(off.runner.calls).includes('nft delete table inet dsvm_agent'), 'the table is deleted');
  t.equal(off.ctx.state.facts.imdsGuard, undefined, 'the fact is gone');
  t.same(off.services.actions, ['disable dsvm-agent-imds-guard.service', 'daemon-reload']);

  const forced = await makeTestContext({ config: { azure: { imdsAccess: { restrict: true } } } });
  t.equal(imdsGuardTask.skip?.(forced.ctx), undefined, 'true: on even with file secrets');
});

t.test('undo (deprovision) removes the table, the unit and the rule file; a second run finds nothing', async (t) => {
  const { ctx, runner, paths } = await makeTestContext({
    commands: [
      { file: 'nft', args: ['delete', 'table', 'inet', 'dsvm_agent'], times: 1 },
      {
        file: 'nft',
        args: ['delete', 'table', 'inet', 'dsvm_agent'],
        result: { exitCode: 1, stderr: 'Error: No such file or directory\n' },
      },
    ],
  });
  await mkdir(paths.systemdUnitDir, { recursive: true });
  await writeFile(path.join(paths.systemdUnitDir, 'dsvm-agent-imds-guard.service'), 'x');
  await writeFile(path.join(paths.configDir, 'imds-guard.nft'), 'x');
  t.same(await undoImdsGuard(ctx), [
    'nftables table inet dsvm_agent',
    'unit /etc/systemd/system/dsvm-agent-imds-guard.service',
    'rule file /etc/dsvm-agent/imds-guard.nft',
  ]);
  t.same(await undoImdsGuard(ctx), [], 'nothing left the second time');
  t.same(runner.unexpected, []);
  const noNft = await makeTestContext({ commands: [nftMissing] });
  t.same(await undoImdsGuard(noNft.ctx), [], 'no nft, nothing installed: nothing to remove, no error');
});

t.test('periodic check: ok, flushed, tampered', async (t) => {
  const installed = { address: '169.254.169.254', port: 80, gids: [1234, 1800000513] };
  const cases: { name: string; list: FakeCommand; state: string; reason: RegExp }[] = [
    { name: 'as installed', list: listPresent, state: 'ok', reason: /only root and gid 1234, 1800000513 reach 169\.254\.169\.254:80/ },
    { name: 'flushed', list: listAbsent, state: 'fail', reason: /table is gone .*systemctl restart dsvm-agent-imds-guard/ },
    {
      name: 'tampered',
      list: { ...listPresent, result: { stdout: fixture('nft-list-tampered.json') } },
      state: 'fail',
      reason: /was changed: .*unexpected: .*skuid 1000/,
    },
    { name: 'nft removed', list: nftMissing, state: 'fail', reason: /nft is not installed/ },
  ];
  for (const c of cases) {
    const { ctx } = await kvContext({ config: GUARDED, commands: [c.list] });
    ctx.state.facts.imdsGuard = installed;
    const out = await imdsGuardCheck.run(ctx);
    t.equal(out.state, c.state, `${c.name}: ${out.reason}`);
    t.match(out.reason, c.reason, `${c.name}: reason`);
  }
  const { ctx } = await makeTestContext();
  t.match(imdsGuardCheck.skip?.(ctx) ?? '', /no secret is read through the managed identity/, 'skipped when the guard is off');
});
