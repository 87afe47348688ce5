import t from 'tap';
import { ConfigInvalid, parseConfig } from '../../../src/agent/config.js';

const valid = `
azure: { imdsEndpoint: http://127.0.0.1:9 }
domain:
  name: contoso.com
  joinUser: dsvm-join@CONTOSO.COM
  joinPassword: { keyVault: { vaultUrl: https://contoso-kv.vault.azure.net, name: dsvm-join } }
share:
  account: contosofiles
  name: workspace
  key: { armListKeys: { subscriptionId: 00000000-0000-0000-0000-000000000000, resourceGroup: rg } }
`;

function issuesOf(yaml: string): { path: string; message: string; got?: string }[] {
  try {
    parseConfig(yaml, 'test.yaml');
  } catch (err) {
    if (err instanceof ConfigInvalid) return err.issues;
    throw err;
  }
  return [];
}

t.test('a valid config parses with defaults filled in', async (t) => {
  const cfg = parseConfig(valid, 'ok.yaml');
  t.equal(cfg.domain.computerName, 'auto');
  t.equal(cfg.share?.mountPoint, '/data/workspace');
  t.equal(cfg.share?.type, 'smb');
  t.equal(cfg.workspace.loginTimeoutMs, 3000);
  t.equal(cfg.health.listen, '127.0.0.1:8642');
  t.same(cfg.domain.allowGroups, []);
});

// Each case: a change to the valid config, the exact key path, and a fragment of the message.
const cases: { name: string; yaml: string; path: string; message: RegExp; got?: string }[] = [
  {
    name: 'missing domain name',
    yaml: 'domain: { joinUser: j, joinPassword: { file: /etc/p } }',
    path: 'domain.name',
    message: /^is required/,
  },
  {
    name: 'NetBIOS name instead of DNS domain',
    yaml: 'domain: { name: CONTOSO, joinUser: j, joinPassword: { file: /etc/p } }',
    path: 'domain.name',
    message: /at least two labels/,
    got: '"CONTOSO"',
  },
  {
    name: 'domain name with a space',
    yaml: 'domain: { name: "contoso .com", joinUser: j, joinPassword: { file: /etc/p } }',
    path: 'domain.name',
    message: /DNS host name/,
  },
  {
    name: '16-character computer name',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p }, computerName: ABCDEFGHIJKLMNOP }',
    path: 'domain.computerName',
    message: /at most 15 characters/,
    got: '"ABCDEFGHIJKLMNOP"',
  },
  {
    name: 'computer name with underscore',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p }, computerName: dsvm_01 }',
    path: 'domain.computerName',
    message: /letters, digits and "-"/,
  },
  {
    name: 'all-digit computer name',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p }, computerName: "12345" }',
    path: 'domain.computerName',
    message: /only digits/,
  },
  {
    name: 'secret given as a plain string',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: hunter2-secret }',
    path: 'domain.joinPassword',
    message: /must be a reference, not the value/,
  },
  {
    name: 'secret file with a relative path',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: etc/p } }',
    path: 'domain.joinPassword.file',
    message: /absolute path/,
  },
  {
    name: 'Key Vault with a bad URL',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { keyVault: { vaultUrl: "not a url", name: x } } }',
    path: 'domain.joinPassword.keyVault.vaultUrl',
    message: /http\(s\) URL of the Key Vault/,
  },
  { name: 'no join secret at all', yaml: 'domain: { name: c.com, joinUser: j }', path: 'domain.joinPassword', message: /is required/ },
  {
    name: 'join password without join user',
    yaml: 'domain: { name: c.com, joinPassword: { file: /etc/p } }',
    path: 'domain.joinUser',
    message: /is required with joinPassword/,
  },
  {
    name: 'join user with a backslash',
    yaml: 'domain: { name: c.com, joinUser: "CONTOSO\\\\j", joinPassword: { file: /etc/p } }',
    path: 'domain.joinUser',
    message: /no spaces or backslashes/,
  },
  {
    name: 'bad OU',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p }, computerOu: "DSVM" }',
    path: 'domain.computerOu',
    message: /distinguished name/,
  },
  {
    name: 'allowGroups as a string',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p }, allowGroups: dsvm-users }',
    path: 'domain.allowGroups',
    message: /list of group names/,
  },
  {
    name: 'fullyQualifiedNames as a string',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p }, fullyQualifiedNames: "no" }',
    path: 'domain.fullyQualifiedNames',
    message: /true or false/,
  },
  {
    name: 'unknown key',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p }, joinPasword: x }',
    path: 'domain.joinPasword',
    message: /unknown key.*joinPassword/,
  },
  {
    name: 'unknown top-level key',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p } }\nshares: {}',
    path: 'shares',
    message: /unknown key/,
  },
  {
    name: 'relative mount point',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p } }\nshare: { account: acct1, name: ws1, key: { file: /etc/k }, mountPoint: data/ws }',
    path: 'share.mountPoint',
    message: /absolute path/,
    got: '"data/ws"',
  },
  {
    name: 'upper-case storage account',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p } }\nshare: { account: Contoso, name: ws1, key: { file: /etc/k } }',
    path: 'share.account',
    message: /3-24 lower-case/,
  },
  {
    name: 'share type cifs',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p } }\nshare: { type: cifs, account: acct1, name: ws1, key: { file: /etc/k } }',
    path: 'share.type',
    message: /smb or nfs/,
  },
  {
    name: 'SMB key share without key',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p } }\nshare: { account: acct1, name: ws1 }',
    path: 'share.key',
    message: /is required for an SMB share/,
  },
  {
    name: 'NFS with a key',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p } }\nshare: { type: nfs, account: acct1, name: ws1, key: { file: /etc/k } }',
    path: 'share.key',
    message: /must not be set for NFS/,
  },
  {
    name: 'storage key inline',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p } }\nshare: { account: acct1, name: ws1, key: "c2VjcmV0a2V5" }',
    path: 'share.key',
    message: /must be a reference/,
  },
  {
    name: 'password in mount options',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p } }\nshare: { account: acct1, name: ws1, key: { file: /etc/k }, options: ["password=abc"] }',
    path: 'share.options',
    message: /must not carry credentials/,
  },
  {
    name: 'dir mode not octal',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p } }\nshare: { account: acct1, name: ws1, key: { file: /etc/k }, dirMode: "0999" }',
    path: 'share.dirMode',
    message: /octal mode/,
  },
  {
    name: 'login timeout as a string',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p } }\nworkspace: { loginTimeoutMs: "3s" }',
    path: 'workspace.loginTimeoutMs',
    message: /number of milliseconds/,
  },
  {
    name: 'login timeout too long',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p } }\nworkspace: { loginTimeoutMs: 600000 }',
    path: 'workspace.loginTimeoutMs',
    message: /at most 60000/,
  },
  {
    name: 'minUid zero',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p } }\nworkspace: { minUid: 0 }',
    path: 'workspace.minUid',
    message: /never act for root/,
  },
  {
    name: 'home link escaping $HOME',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p } }\nworkspace: { homeLink: ../etc/x }',
    path: 'workspace.homeLink',
    message: /must not contain/,
  },
  {
    name: 'health on all interfaces',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p } }\nhealth: { listen: "0.0.0.0:8642" }',
    path: 'health.listen',
    message: /not a loopback address/,
  },
  {
    name: 'health listen without port',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p } }\nhealth: { listen: "127.0.0.1" }',
    path: 'health.listen',
    message: /HOST:PORT/,
  },
  {
    name: 'unknown check id',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p } }\nhealth: { unhealthyOn: [dns] }',
    path: 'health.unhealthyOn[0]',
    message: /check ids/,
  },
  {
    name: 'bad identity client id',
    yaml: 'identity: { clientId: my-identity }\ndomain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p } }',
    path: 'identity.clientId',
    message: /GUID/,
  },
  {
    name: 'IMDS endpoint not a URL',
    yaml: 'azure: { imdsEndpoint: "169.254.169.254" }\ndomain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p } }',
    path: 'azure.imdsEndpoint',
    message: /http\(s\) URL/,
  },
  {
    name: 'duplicate YAML key',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p } }\ndomain: {}',
    path: '',
    message: /YAML syntax.*line 2/,
  },
];

t.test('bad configs name the key path, the problem and the fix', async (t) => {
  t.ok(cases.length >= 20, 'at least 20 cases');
  for (const c of cases) {
    const issues = issuesOf(c.yaml);
    const hit = issues.find((i) => i.path === c.path);
    t.ok(hit, `${c.name}: an issue at "${c.path}" (got ${JSON.stringify(issues.map((i) => i.path))})`);
    if (!hit) continue;
    t.match(hit.message, c.message, `${c.name}: message`);
    if (c.got !== undefined) t.equal(hit.got, c.got, `${c.name}: offending value shown`);
  }
});

t.test('secret values never appear in error output', async (t) => {
  for (const yaml of [
    'domain: { name: c.com, joinUser: j, joinPassword: hunter2-secret }',
    'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p } }\nshare: { account: acct1, name: ws1, key: "c2VjcmV0a2V5c2VjcmV0" }',
    'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p, value: hunter2-secret } }',
  ]) {
    let text = '';
    try {
      parseConfig(yaml, 'x.yaml');
    } catch (err) {
      text = (err as Error).message;
    }
    t.ok(text.length > 0, 'invalid');
    t.notMatch(text, /hunter2-secret|c2VjcmV0a2V5c2VjcmV0/, 'no secret value in the message');
  }
});

t.test('an empty file says what to write', async (t) => {
  t.match(issuesOf('')[0]?.message ?? '', /is empty/);
});
