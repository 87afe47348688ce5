// azure.imdsAccess: every key validated with its key path and a fix (exit 2
// from `config check`), and the default ("auto") decided from the config's own
// use of the managed identity.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ConfigInvalid, parseConfig } from '../../../src/agent/config.js';
import { guardWanted, imdsTarget } from '../../../src/tasks/imds-guard/index.js';

const D = 'domain: { name: contoso.com, joinUser: j, joinPassword: { file: /etc/dsvm-agent/p } }';
const KV_DOMAIN =
  'domain: { name: contoso.com, joinUser: j, joinPassword: { keyVault: { vaultUrl: "https://kv.vault.azure.net", name: j } } }';

function issues(yaml: string): { path: string; message: string }[] {
  try {
    parseConfig(yaml, 'test');
    return [];
  } catch (err) {
    if (err instanceof ConfigInvalid) return err.issues;
    throw err;
  }
}

t.test('bad values name the key path and the fix', async (t) => {
  const cases: { name: string; yaml: string; path: string; message: RegExp }[] = [
    {
      name: 'restrict: yes (a string)',
      yaml: `${D}\nazure: { imdsAccess: { restrict: "yes" } }`,
      path: 'azure.imdsAccess.restrict',
      message: /must be auto, true or false: write/,
    },
    {
      name: 'allowGroups: a newline in a name',
      yaml: `${D}\nazure: { imdsAccess: { allowGroups: ["a\\nb"] } }`,
      path: 'azure.imdsAccess.allowGroups[0]',
      message: /control characters/,
    },
    {
      name: 'allowGroups: gid 0 (root needs no rule)',
      yaml: `${D}\nazure: { imdsAccess: { allowGroups: [0] } }`,
      path: 'azure.imdsAccess.allowGroups[0]',
      message: /./,
    },
    {
      name: 'allowGroups: a single name, not a list',
      yaml: `${D}\nazure: { imdsAccess: { allowGroups: dsvm-id } }`,
      path: 'azure.imdsAccess.allowGroups',
      message: /must be a list/,
    },
    {
      name: 'unknown key',
      yaml: `${D}\nazure: { imdsAccess: { allowUsers: [alice] } }`,
      path: 'azure.imdsAccess.allowUsers',
      message: /unknown key/,
    },
    {
      name: 'a host name endpoint while restricting',
      yaml: `${D}\nazure: { imdsEndpoint: "http://metadata.internal", imdsAccess: { restrict: true } }`,
      path: 'azure.imdsEndpoint',
      message: /must name an IPv4 address while azure\.imdsAccess\.restrict is not false.*set azure\.imdsAccess\.restrict: false/,
    },
  ];
  for (const c of cases) {
    const found = issues(c.yaml);
    const hit = found.find((i) => i.path === c.path);
    t.ok(hit, `${c.name}: reported at ${c.path} (got ${JSON.stringify(found)})`);
    t.match(hit?.message ?? '', c.message, `${c.name}: message`);
  }
  t.same(
    issues(`${D}\nazure: { imdsEndpoint: "http://metadata.internal", imdsAccess: { restrict: false } }`),
    [],
    'a host name is fine when not restricting',
  );
});

t.test('config check exits 2 naming the key', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'dsvm-imds-cfg-'));
  const file = path.join(dir, 'config.yaml');
  await writeFile(file, `${D}\nazure: { imdsAccess: { restrict: maybe } }\n`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts', 'config', 'check', file], { encoding: 'utf8', timeout: 60_000 });
  t.equal(r.status, 2, 'exit 2');
  t.match(r.stderr, /azure\.imdsAccess\.restrict: must be auto, true or false/);
});

t.test('the default: on exactly when a secret is read through the managed identity', async (t) => {
  const cases: { name: string; yaml: string; on: boolean; why: RegExp }[] = [
    { name: 'file secrets only', yaml: D, on: false, why: /no secret is read through the managed identity/ },
    { name: 'join password from Key Vault', yaml: KV_DOMAIN, on: true, why: /domain\.joinPassword is read through/ },
    {
      name: 'storage key through ARM listKeys',
      yaml: `${D}\nshare: { account: contosofiles, name: workspace, key: { armListKeys: { subscriptionId: 00000000-0000-0000-0000-000000000000, resourceGroup: rg } } }`,
      on: true,
      why: /share\.key is read through/,
    },
    { name: 'forced on', yaml: `${D}\nazure: { imdsAccess: { restrict: true } }`, on: true, why: /restrict is true/ },
    {
      name: 'forced off despite Key Vault',
      yaml: `${KV_DOMAIN}\nazure: { imdsAccess: { restrict: false } }`,
      on: false,
      why: /restrict is false/,
    },
  ];
  for (const c of cases) {
    const w = guardWanted(parseConfig(c.yaml, 'test'));
    t.equal(w.on, c.on, `${c.name}: ${w.on ? 'on' : 'off'}`);
    t.match(w.why, c.why, `${c.name}: why`);
  }
  t.same(parseConfig(D, 'test').azure.imdsAccess, { restrict: 'auto', allowGroups: [] }, 'defaults');
});

t.test('imdsTarget: address and port of azure.imdsEndpoint', async (t) => {
  const at = (url: string) => imdsTarget(parseConfig(`${D}\nazure: { imdsEndpoint: "${url}" }`, 'test'));
  t.same(at('http://169.254.169.254'), { address: '169.254.169.254', port: 80 });
  t.same(at('http://127.0.0.1:41234/'), { address: '127.0.0.1', port: 41234 });
  t.same(at('https://10.0.0.4'), { address: '10.0.0.4', port: 443 });
});
