// Key Vault secret references end to end through the real Azure SDK: the
// agent's readSecret in a child process (NODE_EXTRA_CA_CERTS is read only at
// process start), against the loopback IMDS and Key Vault fakes.
import t from 'tap';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { startFakes } from '../../fakes/index.js';

const script = `
import { readSecret } from ${JSON.stringify(path.resolve('src/agent/secrets.ts'))};
import { validateConfig } from ${JSON.stringify(path.resolve('src/agent/config.ts'))};
import { createLogger } from ${JSON.stringify(path.resolve('src/agent/log.ts'))};
import { Redactor } from ${JSON.stringify(path.resolve('src/agent/redact.ts'))};
import { makePaths } from ${JSON.stringify(path.resolve('src/agent/paths.ts'))};
const cfg = validateConfig(JSON.parse(process.env.TEST_CONFIG));
const redactor = new Redactor();
const lines = [];
const log = createLogger({ level: 'debug', redactor, journald: true, write: (l) => lines.push(l) });
try {
  const v = await readSecret(cfg.domain.joinPassword, 'domain.joinPassword', { cfg, paths: makePaths('/'), log, redactor });
  log.info('the secret is ' + v);
  console.log(JSON.stringify({ ok: true, length: v.length, logs: lines }));
} catch (err) {
  console.log(JSON.stringify({ ok: false, kind: err.kind, message: err.message, fix: err.fix, logs: lines }));
}
`;

async function readInChild(
  env: Record<string, string>,
): Promise<{ ok: boolean; length?: number; kind?: string; message?: string; fix?: string; logs: string[] }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '--import', path.resolve('test/helpers/localhost-dns.mjs'), '--input-type=module', '-e', script],
    {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  await new Promise((r) => child.once('exit', r));
  const line = out.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line);
  } catch {
    throw new Error(`child output not JSON: ${out} ${err}`);
  }
}

t.test('Key Vault secret through the managed identity', async (t) => {
  const secretValue = 'Join-P@ss-0123456789';
  const fakes = await startFakes({
    seed: {
      identities: [
        { clientId: '11111111-1111-1111-1111-111111111111', secrets: '*' },
        { clientId: '22222222-2222-2222-2222-222222222222', secrets: [] },
      ],
      secrets: { 'dsvm-join': secretValue },
    },
  });
  t.teardown(() => fakes.close());
  const config = (clientId: string, name = 'dsvm-join', imds = fakes.urls.imds) =>
    JSON.stringify({
      identity: { clientId },
      azure: { imdsEndpoint: imds },
      domain: { name: 'contoso.test', joinUser: 'j', joinPassword: { keyVault: { vaultUrl: fakes.vaultUrl('dsvm'), name } } },
    });
  const env = (cfg: string) => ({ TEST_CONFIG: cfg, NODE_EXTRA_CA_CERTS: fakes.caFile });
  const cases = [
    { name: 'success', cfg: config('11111111-1111-1111-1111-111111111111'), ok: true },
    {
      name: 'identity without access: 403',
      cfg: config('22222222-2222-2222-2222-222222222222'),
      kind: 'permanent',
      message: /access denied \(403\)/,
      fix: /grant the user-assigned identity 22222222/,
    },
    {
      name: 'missing secret: 404',
      cfg: config('11111111-1111-1111-1111-111111111111', 'nope'),
      kind: 'permanent',
      message: /"nope".*not found \(404\)/,
    },
    {
      name: 'IMDS down',
      cfg: config('11111111-1111-1111-1111-111111111111', 'dsvm-join', 'http://127.0.0.1:9'),
      kind: 'transient',
      message: /cannot read Key Vault secret "dsvm-join"/,
      fix: /managed identity/,
    },
  ];
  for (const c of cases) {
    const r = await readInChild(env(c.cfg));
    t.equal(r.ok, c.ok ?? false, `${c.name}: outcome (${r.message ?? ''})`);
    if (c.ok) t.equal(r.length, secretValue.length, `${c.name}: value read`);
    if (c.kind) t.equal(r.kind, c.kind, `${c.name}: classified ${c.kind}`);
    if (c.message) t.match(r.message ?? '', c.message, `${c.name}: message`);
    if (c.fix) t.match(r.fix ?? '', c.fix, `${c.name}: fix`);
    t.notMatch(r.logs.join('\n'), secretValue, `${c.name}: no secret in logs`);
  }
});
