import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AgentError } from '../../../src/agent/errors.js';
import { createLogger } from '../../../src/agent/log.js';
import { Redactor } from '../../../src/agent/redact.js';
import { emptyState, parseFacts, StateStore } from '../../../src/agent/state.js';

const log = createLogger({ level: 'error', redactor: new Redactor(), write: () => undefined });

t.test('new VM id means a new first boot; same id keeps the state', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'state-'));
  const store = new StateStore(path.join(dir, 'state.json'), log);
  const first = await store.forVm({ imds: 'vm-a', product_uuid: 'uuid-a' });
  t.equal(first.newVm, true);
  first.state.firstBootCompletedAt = '2026-01-01T00:00:00Z';
  await store.write(first.state);
  const again = await store.forVm({ imds: 'vm-a', product_uuid: 'uuid-a' });
  t.equal(again.newVm, false);
  t.equal(again.state.firstBootCompletedAt, '2026-01-01T00:00:00Z');
  const late = await store.forVm({ product_uuid: 'uuid-a' });
  t.equal(late.newVm, false, 'IMDS not answering this time: the product UUID still says same VM');
  const captured = await store.forVm({ imds: 'vm-b', product_uuid: 'uuid-b' });
  t.equal(captured.newVm, true, 'image booted as another VM: first boot again');
  t.equal(captured.previousVmId, 'vm-a');
  t.equal(captured.state.firstBootCompletedAt, undefined);
});

t.test('a slow IMDS at first boot does not make a second first boot', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'state-'));
  const store = new StateStore(path.join(dir, 'state.json'), log);
  const cases = [
    {
      name: 'IMDS late, product UUID and cloud-init agree',
      first: { product_uuid: 'u1', 'cloud-init': 'c1' },
      next: { imds: 'v1', product_uuid: 'u1', 'cloud-init': 'c1' },
      newVm: false,
    },
    { name: 'only cloud-init first, IMDS only later', first: { 'cloud-init': 'c1' }, next: { imds: 'v1' }, newVm: false },
    {
      name: 'product UUID differs: captured image on a new VM',
      first: { product_uuid: 'u1' },
      next: { imds: 'v2', product_uuid: 'u2' },
      newVm: true,
    },
    { name: 'cloud-init instance id differs', first: { 'cloud-init': 'c1', imds: 'v1' }, next: { 'cloud-init': 'c2' }, newVm: true },
  ];
  for (const c of cases) {
    const first = await store.forVm(c.first);
    first.state.firstBootCompletedAt = 'done';
    await store.write(first.state);
    const next = await store.forVm(c.next);
    t.equal(next.newVm, c.newVm, c.name);
    if (!c.newVm) t.equal(next.state.firstBootCompletedAt, 'done', `${c.name}: state kept`);
  }
});

t.test('a corrupt state file is moved aside with a warning, never a crash', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'state-'));
  const file = path.join(dir, 'state.json');
  const warnings: string[] = [];
  const store = new StateStore(
    file,
    createLogger({ level: 'warn', redactor: new Redactor(), journald: true, write: (l) => warnings.push(l) }),
  );
  for (const [name, content] of [
    ['truncated JSON', '{"version":1,"vmId":"a'],
    ['wrong shape', '{"hello":"world"}'],
    ['binary garbage', '\u0000\u0001\u0002'],
  ] as const) {
    await writeFile(file, content);
    const got = await store.read();
    t.equal(got, undefined, `${name}: treated as no state`);
    const files = await readdir(dir);
    t.ok(
      files.some((f) => f.startsWith('state.json.corrupt-')),
      `${name}: moved aside`,
    );
    t.notOk(files.includes('state.json'), `${name}: original gone`);
  }
  t.match(warnings.join('\n'), /<4>.*corrupt/);
});

t.test('atomic write: a writer killed at random moments never leaves a torn file', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'state-'));
  const file = path.join(dir, 'state.json');
  await new StateStore(file, log).write(emptyState('vm-0', 'test'));
  const writer = `
    import { StateStore, emptyState } from ${JSON.stringify(path.resolve('src/agent/state.ts'))};
    import { createLogger } from ${JSON.stringify(path.resolve('src/agent/log.ts'))};
    import { Redactor } from ${JSON.stringify(path.resolve('src/agent/redact.ts'))};
    const store = new StateStore(${JSON.stringify(file)}, createLogger({ redactor: new Redactor(), write: () => {} }));
    const big = 'x'.repeat(200000);
    for (let i = 0; ; i++) { const s = emptyState('vm-' + i, 'test'); s.facts.pad = big; await store.write(s); }
  `;
  for (let round = 0; round < 8; round++) {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', writer], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 700 + Math.random() * 300));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const text = await readFile(file, 'utf8');
    const parsed = JSON.parse(text) as { vmId: string };
    t.match(parsed.vmId, /^vm-\d+$/, `round ${round}: complete state (${parsed.vmId})`);
  }
});

t.test('read-only (plan, status): a corrupt state file is read as empty and left exactly as it was', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'state-'));
  const file = path.join(dir, 'state.json');
  const warnings: string[] = [];
  const store = new StateStore(
    file,
    createLogger({ level: 'warn', redactor: new Redactor(), journald: true, write: (l) => warnings.push(l) }),
  );
  const garbage = '{"version":1,"vmId":"a';
  await writeFile(file, garbage);
  const got = await store.forVm({ imds: 'vm-a' }, { readOnly: true });
  t.equal(got.newVm, true, 'treated as no state');
  t.same(await readdir(dir), ['state.json'], 'nothing moved aside, nothing added');
  t.equal(await readFile(file, 'utf8'), garbage, 'the file is untouched');
  t.match(warnings.join('\n'), /<4>.*corrupt.*left in place/);
});

t.test('a state file that cannot be read or moved aside is a clear error, not a stack', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'state-'));
  const cases = [
    {
      name: 'state.json is a directory',
      setup: async () => {
        const file = path.join(dir, 'state.json');
        await mkdir(file);
        return file;
      },
      message: /cannot read the state file .*state\.json \(EISDIR\)/,
      fix: /is a directory: remove it/,
    },
    {
      // The aside name ("<name>.corrupt-<time>") is longer than a file name may be.
      name: 'corrupt, and the move aside fails',
      setup: async () => {
        const file = path.join(dir, 's'.repeat(240));
        await writeFile(file, 'garbage');
        return file;
      },
      message: /state file .*s{240} is corrupt .* could not be moved aside to .*\(ENAMETOOLONG\)/,
      fix: /move .* away by hand/,
    },
  ];
  for (const c of cases) {
    const file = await c.setup();
    const err = await new StateStore(file, log).read().then(
      () => undefined,
      (e: unknown) => e,
    );
    t.ok(err instanceof AgentError, `${c.name}: an AgentError`);
    if (!(err instanceof AgentError)) continue;
    t.match(err.message, c.message, `${c.name}: names the path and the problem`);
    t.match(err.fix ?? '', c.fix, `${c.name}: says the fix`);
  }
});

t.test('facts read from disk keep their types; a malformed or unknown one is dropped', async (t) => {
  const dc = { host: 'dc1.contoso.test', address: '10.77.0.2', clockOffsetMs: -12, foundAt: '2026-12-06T05:00:00.000Z' };
  const guard = { address: '169.254.169.254', port: 80, gids: [0, 1001] };
  const cases = [
    {
      name: 'every fact well formed',
      raw: {
        computerName: 'DSVM-1',
        nsswitchAdded: ['passwd', 'group'],
        domainController: dc,
        imdsGuard: guard,
        shareUnit: 'data-workspace.mount',
      },
      want: {
        computerName: 'DSVM-1',
        nsswitchAdded: ['passwd', 'group'],
        domainController: dc,
        imdsGuard: guard,
        shareUnit: 'data-workspace.mount',
      },
    },
    { name: 'a number for the computer name', raw: { computerName: 7 }, want: {} },
    { name: 'nsswitch words that are not strings', raw: { nsswitchAdded: ['passwd', 3] }, want: {} },
    { name: 'a DC without its address', raw: { domainController: { host: 'dc1', clockOffsetMs: 0 } }, want: {} },
    { name: 'a guard with a gid that is not a number', raw: { imdsGuard: { ...guard, gids: ['0'] } }, want: {} },
    {
      name: 'a DC from before foundAt existed',
      raw: { domainController: { ...dc, foundAt: undefined } },
      want: { domainController: { host: dc.host, address: dc.address, clockOffsetMs: -12 } },
    },
    { name: 'an unknown fact', raw: { somethingElse: true }, want: {} },
    { name: 'not an object', raw: ['DSVM-1'], want: {} },
  ];
  for (const c of cases) t.same(parseFacts(c.raw), c.want, c.name);

  const dir = await mkdtemp(path.join(tmpdir(), 'state-'));
  const file = path.join(dir, 'state.json');
  await writeFile(file, JSON.stringify({ ...emptyState('vm-a', 'imds'), facts: { computerName: 7, shareSource: '//a/b' } }));
  const { state } = await new StateStore(file, log).forVm({ imds: 'vm-a' });
  t.same(state.facts, { shareSource: '//a/b' }, 'the store reads facts through the same check');
});
