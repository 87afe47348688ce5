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

const D = 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p } }';
const share = (extra: string) => `${D}\nshare: { account: acct1, name: ws1, ${extra} }`;
const joinSecret = (ref: string) => `domain: { name: c.com, joinUser: j, joinPassword: ${ref} }`;
const listKeys = (extra: string) =>
  share(`key: { armListKeys: { subscriptionId: 00000000-0000-0000-0000-000000000000, resourceGroup: rg, ${extra} } }`);
const SECRET_FORMS = '{file: /etc/dsvm-agent/NAME} (root-owned, mode 0600) or {keyVault: {vaultUrl: https://..., name: ...}}';
const KEY_FORMS =
  '{file: /etc/dsvm-agent/NAME}, {keyVault: {vaultUrl: https://..., name: ...}} or {armListKeys: {subscriptionId: ..., resourceGroup: ...}}';
const CHECK_IDS = 'domain-trust, identity-lookup, sssd, share-mounted, share-quota, clock, disk-space, imds-guard';

// Each case: a config, the exact key path, the exact message, and the
// offending value as shown (absent: no value is shown, e.g. for a secret).

/** The wording of config-values.ts, spelled out: the table asserts exact messages. */
const GROUP_CHAR = (c: string) =>
  `must not contain "${c}" (AD does not allow " / \\ [ ] : ; | = , + * ? < > in a group name, and in sssd.conf or sudoers it would change the line): write the group's name as AD shows it, one group per list item`;
const SYSTEM_DIR = (d: string) =>
  `must not be ${d} itself (a mount there hides everything it holds): use a directory below it of its own, e.g. /data/workspace`;
const SYSTEM_TREE = (d: string) =>
  `must not be in ${d} (a system directory: a mount or user folders there would hide or change the system): use a directory of its own, e.g. /data/workspace`;
const TEXTFILE_PLACE =
  'must be under /var/lib/prometheus/, /var/lib/node_exporter/, /var/lib/dsvm-agent/, /run/ (the daemon replaces this file every few seconds, so any other file there would be destroyed): use e.g. /var/lib/prometheus/node-exporter/dsvm-agent.prom';
const WORLD_WRITABLE =
  'must not be world-writable (every local user could delete or replace other users\' notebooks): drop the "other" write bit, e.g. "0770" or "0775"';
/** Nine levels of nine aliases: 9^9 nodes if expanded. */
const LAUGHS = [
  'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
  ...'bcdefghi'.split('').map((c, i) => `${c}: &${c} [${Array(9).fill(`*${'abcdefghi'[i]}`).join(',')}]`),
  D,
].join('\n');

const cases: { name: string; yaml: string; path: string; message: string; got?: string }[] = [
  {
    name: 'missing domain name',
    yaml: 'domain: { joinUser: j, joinPassword: { file: /etc/p } }',
    path: 'domain.name',
    message: 'is required: add the AD DNS domain name, e.g. contoso.com',
  },
  {
    name: 'NetBIOS name instead of DNS domain',
    yaml: 'domain: { name: CONTOSO, joinUser: j, joinPassword: { file: /etc/p } }',
    path: 'domain.name',
    message: 'must be the AD DNS domain name with at least two labels, not the NetBIOS name: write e.g. contoso.com',
    got: '"CONTOSO"',
  },
  {
    name: 'domain name with a space',
    yaml: 'domain: { name: "contoso .com", joinUser: j, joinPassword: { file: /etc/p } }',
    path: 'domain.name',
    message: 'must be a DNS host name: write the AD DNS domain name such as contoso.com (letters, digits, "-" and "." only)',
    got: '"contoso .com"',
  },
  {
    name: 'domain left empty',
    yaml: 'domain:',
    path: 'domain',
    message:
      'is empty: write its keys below it, indented (name, joinUser, joinPassword, oneTimePassword, computerOu, computerName, allowGroups, sudoGroups, fullyQualifiedNames, homeTemplate, shell, idMapping, denyGroups, dnsUpdate, sssdOptions)',
  },
  {
    name: 'no domain at all',
    yaml: 'logging: { level: info }',
    path: 'domain',
    message:
      'is required: add the Active Directory domain to join (its keys: name, joinUser, joinPassword, oneTimePassword, computerOu, computerName, allowGroups, sudoGroups, fullyQualifiedNames, homeTemplate, shell, idMapping, denyGroups, dnsUpdate, sssdOptions)',
  },
  {
    name: 'the document is a list',
    yaml: '- domain: c.com',
    path: '',
    message:
      'must be a mapping of keys, not a list: write its keys below it, indented (identity, azure, domain, share, workspace, health, repair, scheduledEvents, sweep, logging)',
    got: '[{"domain":"c.com"}]',
  },
  {
    name: '16-character computer name',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p }, computerName: ABCDEFGHIJKLMNOP }',
    path: 'domain.computerName',
    message: 'is longer than 15 characters (the NetBIOS limit): choose a shorter name or use auto',
    got: '"ABCDEFGHIJKLMNOP"',
  },
  {
    name: 'computer name with underscore',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p }, computerName: dsvm_01 }',
    path: 'domain.computerName',
    message: 'must be "auto" or a NetBIOS name: use 1-15 letters, digits and "-", starting with a letter or digit',
    got: '"dsvm_01"',
  },
  {
    name: 'all-digit computer name',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p }, computerName: "12345" }',
    path: 'domain.computerName',
    message: 'must not be only digits (AD rejects it): add a letter',
    got: '"12345"',
  },
  {
    name: 'computer name as a number',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p }, computerName: 12345 }',
    path: 'domain.computerName',
    message: 'must be "auto" or a computer name: write auto, or a name of at most 15 letters, digits and "-"',
    got: '12345',
  },
  {
    name: 'secret given as a plain string',
    yaml: joinSecret('hunter2-secret'),
    path: 'domain.joinPassword',
    message: `must be a reference to the secret, never the secret itself: use ${SECRET_FORMS}, and remove the value from this file`,
  },
  {
    name: 'secret given as a number',
    yaml: joinSecret('12345678'),
    path: 'domain.joinPassword',
    message: `must be a reference to the secret, never the secret itself: use ${SECRET_FORMS}, and remove the value from this file`,
  },
  {
    name: 'secret reference left empty',
    yaml: joinSecret(''),
    path: 'domain.joinPassword',
    message: `is empty: write a reference: ${SECRET_FORMS}`,
  },
  {
    name: 'secret reference with a misspelled form',
    yaml: joinSecret('{ fiel: /etc/p }'),
    path: 'domain.joinPassword',
    message: `is not a secret reference: write ${SECRET_FORMS}`,
    got: '{fiel}',
  },
  {
    name: 'secret reference with an extra key',
    yaml: joinSecret('{ file: /etc/p, value: hunter2-secret }'),
    path: 'domain.joinPassword.value',
    message: 'unknown key: remove it or fix its spelling (known here: file, keyVault)',
  },
  {
    name: 'secret file with a relative path',
    yaml: joinSecret('{ file: etc/p }'),
    path: 'domain.joinPassword.file',
    message: 'must be an absolute path: write the full path to a root-owned file (mode 0600) holding the secret, starting with "/"',
    got: '"etc/p"',
  },
  {
    name: 'Key Vault with a bad URL',
    yaml: joinSecret('{ keyVault: { vaultUrl: "not a url", name: x } }'),
    path: 'domain.joinPassword.keyVault.vaultUrl',
    message: 'must be an http(s) URL: write the URL of the Key Vault, e.g. https://contoso-kv.vault.azure.net',
    got: '"not a url"',
  },
  {
    name: 'Key Vault with a bad secret name',
    yaml: joinSecret('{ keyVault: { vaultUrl: "https://kv.vault.azure.net", name: "dsvm join" } }'),
    path: 'domain.joinPassword.keyVault.name',
    message: 'must be a Key Vault secret name: use 1-127 letters, digits or "-"',
    got: '"dsvm join"',
  },
  {
    name: 'Key Vault with a bad version',
    yaml: joinSecret('{ keyVault: { vaultUrl: "https://kv.vault.azure.net", name: j, version: v1 } }'),
    path: 'domain.joinPassword.keyVault.version',
    message: 'must be a secret version: write its 32 hex digits, or remove version to read the latest',
    got: '"v1"',
  },
  {
    name: 'Key Vault without the vault URL',
    yaml: joinSecret('{ keyVault: { name: j } }'),
    path: 'domain.joinPassword.keyVault.vaultUrl',
    message: 'is required: add the URL of the Key Vault, e.g. https://contoso-kv.vault.azure.net',
  },
  {
    name: 'no join secret at all',
    yaml: 'domain: { name: c.com, joinUser: j }',
    path: 'domain.joinPassword',
    message: 'is required (or oneTimePassword for a pre-staged computer account): add a secret reference',
  },
  {
    name: 'join password without join user',
    yaml: 'domain: { name: c.com, joinPassword: { file: /etc/p } }',
    path: 'domain.joinUser',
    message: 'is required with joinPassword: add the join account name',
  },
  {
    name: 'join user with a backslash',
    yaml: 'domain: { name: c.com, joinUser: "CONTOSO\\\\j", joinPassword: { file: /etc/p } }',
    path: 'domain.joinUser',
    message: 'must be a user name: write e.g. dsvm-join or dsvm-join@CONTOSO.COM (no spaces or backslashes)',
    got: '"CONTOSO\\\\j"',
  },
  {
    name: 'bad OU',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p }, computerOu: "DSVM" }',
    path: 'domain.computerOu',
    message: 'must be a distinguished name: write e.g. OU=DSVM,DC=contoso,DC=com',
    got: '"DSVM"',
  },
  {
    name: 'allowGroups as a string',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p }, allowGroups: dsvm-users }',
    path: 'domain.allowGroups',
    message: 'must be a list, not text: write [dsvm-users], or one "- item" line per item',
    got: '"dsvm-users"',
  },
  {
    name: 'idMapping not auto or posix',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p }, idMapping: rfc2307 }',
    path: 'domain.idMapping',
    message: 'must be auto or posix: pick auto (uids and gids computed from the SIDs) or posix (the uidNumber and gidNumber AD holds)',
    got: '"rfc2307"',
  },
  {
    name: 'a group both allowed and denied',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p }, allowGroups: [dsvm-users], denyGroups: [DSVM-Users] }',
    path: 'domain.denyGroups[0]',
    message: 'is also in allowGroups or sudoGroups (deny wins, so its members could never log in): remove it from one list',
    got: '"DSVM-Users"',
  },
  {
    name: 'dnsUpdate as text',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p }, dnsUpdate: "off" }',
    path: 'domain.dnsUpdate',
    message: 'must be true or false, not text: write true or false without quotes',
    got: '"off"',
  },
  {
    name: 'sssdOptions setting an option the agent sets',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p }, sssdOptions: { simple_allow_groups: everyone } }',
    path: 'domain.sssdOptions.simple_allow_groups',
    message: 'is set by the agent itself: remove it from domain.sssdOptions (use domain.allowGroups (and domain.sudoGroups))',
    got: '"everyone"',
  },
  {
    name: 'sssdOptions name that is no option name',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p }, sssdOptions: { "[sssd] services": nss } }',
    path: 'domain.sssdOptions.[sssd] services',
    message: 'is not an sssd option name: use the name as sssd.conf(5) and sssd-ad(5) spell it, lower case with "_", e.g. ldap_referrals',
    got: '"nss"',
  },
  {
    name: 'sssdOptions value on two lines',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p }, sssdOptions: { ldap_referrals: "false\\n[sssd]" } }',
    path: 'domain.sssdOptions.ldap_referrals',
    message: 'must not contain a newline, tab or other control character (it would start a new line in sssd.conf): write it on one line',
    got: '"false\\n[sssd]"',
  },
  {
    name: 'empty group name',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p }, allowGroups: [""] }',
    path: 'domain.allowGroups[0]',
    message: 'is empty: write a group name or remove the item',
    got: '""',
  },
  {
    name: 'fullyQualifiedNames as a string',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p }, fullyQualifiedNames: "no" }',
    path: 'domain.fullyQualifiedNames',
    message: 'must be true or false, not text: write true or false without quotes',
    got: '"no"',
  },
  {
    name: 'misspelled key',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p }, joinPasword: x }',
    path: 'domain.joinPasword',
    message: 'unknown key: rename it to joinPassword, or remove it',
  },
  {
    name: 'misspelled section',
    yaml: `${D}\nhealthz: {}`,
    path: 'healthz',
    message: 'unknown key: rename it to health, or remove it',
  },
  {
    name: 'unknown top-level key',
    yaml: `${D}\nextras: {}`,
    path: 'extras',
    message:
      'unknown key: remove it or fix its spelling (known here: identity, azure, domain, share, workspace, health, repair, scheduledEvents, sweep, logging)',
  },
  {
    name: 'relative mount point',
    yaml: share('key: { file: /etc/k }, mountPoint: data/ws'),
    path: 'share.mountPoint',
    message: 'must be an absolute path: write the full path to the mount point, starting with "/"',
    got: '"data/ws"',
  },
  {
    name: 'upper-case storage account',
    yaml: `${D}\nshare: { account: Contoso, name: ws1, key: { file: /etc/k } }`,
    path: 'share.account',
    message: 'must be a storage account name: use 3-24 lower-case letters and digits',
    got: '"Contoso"',
  },
  {
    name: 'share type cifs',
    yaml: share('type: cifs, key: { file: /etc/k }'),
    path: 'share.type',
    message: 'must be smb or nfs: pick one',
    got: '"cifs"',
  },
  {
    name: 'SMB key share without key',
    yaml: share('auth: key'),
    path: 'share.key',
    message: 'is required for an SMB share with auth: key: add {keyVault: ...}, {file: ...} or {armListKeys: ...}',
  },
  {
    name: 'NFS with a key',
    yaml: share('type: nfs, key: { file: /etc/k }'),
    path: 'share.key',
    message: 'must not be set for NFS: remove it (NFS 4.1 shares use network rules, not keys)',
    got: '{file}',
  },
  {
    name: 'storage key inline',
    yaml: share('key: "c2VjcmV0a2V5"'),
    path: 'share.key',
    message: `must be a reference to the secret, never the secret itself: use ${KEY_FORMS}, and remove the value from this file`,
  },
  {
    name: 'listKeys with a bad subscription id',
    yaml: share('key: { armListKeys: { subscriptionId: my-subscription, resourceGroup: rg } }'),
    path: 'share.key.armListKeys.subscriptionId',
    message: 'must be a subscription id: write its GUID, e.g. 00000000-0000-0000-0000-000000000000',
    got: '"my-subscription"',
  },
  {
    name: 'listKeys with a bad resource group',
    yaml: share('key: { armListKeys: { subscriptionId: 00000000-0000-0000-0000-000000000000, resourceGroup: "my rg" } }'),
    path: 'share.key.armListKeys.resourceGroup',
    message: 'must be a resource group name: use 1-90 letters, digits and "-_.()"',
    got: '"my rg"',
  },
  {
    name: 'listKeys with a bad key name',
    yaml: listKeys('keyName: key3'),
    path: 'share.key.armListKeys.keyName',
    message: 'must be key1 or key2: pick the storage account key to mount with',
    got: '"key3"',
  },
  {
    name: 'password in mount options',
    yaml: share('key: { file: /etc/k }, options: [vers=3.0, "password=abc"]'),
    path: 'share.options[1]',
    message: 'must not carry credentials ("password="): remove it; the agent writes a root-only credentials file',
  },
  {
    name: 'mount option with a space',
    yaml: share('key: { file: /etc/k }, options: ["nobrl x"]'),
    path: 'share.options[0]',
    message: 'must be a mount option: write NAME or NAME=VALUE in lower case without spaces or commas, e.g. actimeo=30',
    got: '"nobrl x"',
  },
  {
    name: 'dir mode not octal',
    yaml: share('key: { file: /etc/k }, dirMode: "0999"'),
    path: 'share.dirMode',
    message: 'must be an octal mode: write e.g. "0770" (digits 0-7)',
    got: '"0999"',
  },
  {
    name: 'dir mode unquoted',
    yaml: share('key: { file: /etc/k }, dirMode: 0770'),
    path: 'share.dirMode',
    message: 'must be a quoted octal mode, not a number: write it in quotes, e.g. "0770"',
    got: '770',
  },
  {
    name: 'uid neither id nor name',
    yaml: share('key: { file: /etc/k }, uid: true'),
    path: 'share.uid',
    message: 'must be a numeric user id or a user name: write e.g. 1000 or root',
    got: 'true',
  },
  {
    name: 'login timeout as a string',
    yaml: `${D}\nworkspace: { loginTimeoutMs: "3s" }`,
    path: 'workspace.loginTimeoutMs',
    message: 'must be a whole number, not text: write digits without quotes or a unit, e.g. 3000',
    got: '"3s"',
  },
  {
    name: 'login timeout too long',
    yaml: `${D}\nworkspace: { loginTimeoutMs: 600000 }`,
    path: 'workspace.loginTimeoutMs',
    message: 'must be at most 60000: lower it (a login must not wait longer)',
    got: '600000',
  },
  {
    name: 'minUid zero',
    yaml: `${D}\nworkspace: { minUid: 0 }`,
    path: 'workspace.minUid',
    message:
      'must be at least 1000 (uids below that are system accounts on Debian and Ubuntu, SYS_UID_MAX 999 in /etc/login.defs, and the agent never acts for them): raise it to 1000 or more',
    got: '0',
  },
  {
    name: 'minUid with a fraction',
    yaml: `${D}\nworkspace: { minUid: 1.5 }`,
    path: 'workspace.minUid',
    message: 'must be a whole number: drop the fraction',
    got: '1.5',
  },
  {
    name: 'createHome as a string',
    yaml: `${D}\nworkspace: { createHome: "yes" }`,
    path: 'workspace.createHome',
    message: 'must be true or false, not text: write true or false without quotes',
    got: '"yes"',
  },
  {
    name: 'home link escaping $HOME',
    yaml: `${D}\nworkspace: { homeLink: ../etc/x }`,
    path: 'workspace.homeLink',
    message: 'must not contain ".", ".." or empty segments: write e.g. notebooks/remote',
    got: '"../etc/x"',
  },
  {
    name: 'health on all interfaces',
    yaml: `${D}\nhealth: { listen: "0.0.0.0:8642" }`,
    path: 'health.listen',
    message: 'is not on a loopback address: use 127.0.0.1:PORT, or set health.allowNonLoopback: true deliberately',
    got: '"0.0.0.0:8642"',
  },
  {
    name: 'health listen without port',
    yaml: `${D}\nhealth: { listen: "127.0.0.1" }`,
    path: 'health.listen',
    message: 'must be HOST:PORT: write e.g. 127.0.0.1:8642',
    got: '"127.0.0.1"',
  },
  {
    name: 'negative grace',
    yaml: `${D}\nhealth: { initializingGraceSec: -1 }`,
    path: 'health.initializingGraceSec',
    message: 'must be at least 0: raise it',
    got: '-1',
  },
  {
    name: 'unknown check id',
    yaml: `${D}\nhealth: { unhealthyOn: [dns] }`,
    path: 'health.unhealthyOn[0]',
    message: `must be a check id: use one of ${CHECK_IDS}`,
    got: '"dns"',
  },
  {
    name: 'schedule for an unknown check',
    yaml: `${D}\nhealth: { checks: { dns: { enabled: false } } }`,
    path: 'health.checks.dns',
    message: `unknown key: remove it or fix its spelling (known here: ${CHECK_IDS})`,
  },
  {
    name: 'bad cron schedule',
    yaml: `${D}\nhealth: { checks: { clock: { schedule: every minute } } }`,
    path: 'health.checks.clock.schedule',
    message: 'must be a cron schedule with 5 or 6 fields: write e.g. "*/30 * * * * *" (in quotes)',
    got: '"every minute"',
  },
  {
    name: 'cron schedule with a field out of range',
    yaml: `${D}\nhealth: { checks: { clock: { schedule: "*/90 * * * * *" } } }`,
    path: 'health.checks.clock.schedule',
    message:
      'is not a valid cron schedule (Syntax error, steps cannot be greater than maximum value of part (60)): write 5 or 6 fields, seconds first when 6, e.g. "*/30 * * * * *" (in quotes)',
    got: '"*/90 * * * * *"',
  },
  {
    name: 'repair switch as a string',
    yaml: `${D}\nrepair: { enabled: "off" }`,
    path: 'repair.enabled',
    message: 'must be true or false, not text: write true or false without quotes',
    got: '"off"',
  },
  {
    name: 'scheduled events polled too rarely',
    yaml: `${D}\nscheduledEvents: { pollSec: 600 }`,
    path: 'scheduledEvents.pollSec',
    message: 'must be at most 300: lower it',
    got: '600',
  },
  {
    name: 'identity client id as a number',
    yaml: `identity: { clientId: 5 }\n${D}`,
    path: 'identity.clientId',
    message:
      'must be text, not a number: write it in quotes (the client id (a GUID) of a user-assigned managed identity attached to the VM)',
    got: '5',
  },
  {
    name: 'bad identity client id',
    yaml: `identity: { clientId: my-identity }\n${D}`,
    path: 'identity.clientId',
    message: 'must be a client id (a GUID): copy the client id of a user-assigned managed identity attached to the VM',
    got: '"my-identity"',
  },
  {
    name: 'IMDS endpoint not a URL',
    yaml: `azure: { imdsEndpoint: "169.254.169.254" }\n${D}`,
    path: 'azure.imdsEndpoint',
    message: 'must be an http(s) URL: write the URL of the Instance Metadata Service, e.g. http://169.254.169.254',
    got: '"169.254.169.254"',
  },
  {
    name: 'unknown log level',
    yaml: `${D}\nlogging: { level: verbose }`,
    path: 'logging.level',
    message: 'must be error, warn, info or debug: pick one',
    got: '"verbose"',
  },
  // Issue 15, defect 5: values rendered into files are checked against that file's syntax.
  {
    name: 'newline in a group name (sssd.conf injection)',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p }, allowGroups: ["dsvm-users\\n[domain/evil]"] }',
    path: 'domain.allowGroups[0]',
    message:
      'must not contain a newline, tab or other control character (it would start a new line in sssd.conf and sudoers): write it on one line',
    got: '"dsvm-users\\n[domain/evil]"',
  },
  {
    name: 'comma in a group name (one more allowed group)',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p }, allowGroups: ["dsvm-users, domain users"] }',
    path: 'domain.allowGroups[0]',
    message: GROUP_CHAR(','),
    got: '"dsvm-users, domain users"',
  },
  {
    name: 'bracket in a sudo group name (an sssd.conf section)',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p }, sudoGroups: ["[sssd]"] }',
    path: 'domain.sudoGroups[0]',
    message: GROUP_CHAR('['),
    got: '"[sssd]"',
  },
  {
    name: 'all-digit group name (a gid to NSS)',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p }, allowGroups: ["1000"] }',
    path: 'domain.allowGroups[0]',
    message: 'must not be only digits (NSS reads a number as a gid): write the group name',
    got: '"1000"',
  },
  {
    name: 'newline in domain.shell',
    yaml: 'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p }, shell: "/bin/bash\\nsimple_allow_users = mallory" }',
    path: 'domain.shell',
    message:
      'must not contain a newline, tab or other control character (it would start a new line in the files it is written to): write it on one line',
    got: '"/bin/bash\\nsimple_allow_users = mallory"',
  },
  {
    name: 'share mounted on / (renders -.mount)',
    yaml: share('key: { file: /etc/k }, mountPoint: /'),
    path: 'share.mountPoint',
    message: SYSTEM_DIR('/'),
    got: '"/"',
  },
  {
    name: 'share mounted on /home (hides every home)',
    yaml: share('key: { file: /etc/k }, mountPoint: /home/'),
    path: 'share.mountPoint',
    message: SYSTEM_DIR('/home'),
    got: '"/home/"',
  },
  {
    name: 'share mounted in /usr',
    yaml: share('key: { file: /etc/k }, mountPoint: /usr/local/share/ws'),
    path: 'share.mountPoint',
    message: SYSTEM_TREE('/usr'),
    got: '"/usr/local/share/ws"',
  },
  {
    name: 'workspace root in /etc',
    yaml: `${D}\nworkspace: { root: /etc/dsvm }`,
    path: 'workspace.root',
    message: SYSTEM_TREE('/etc'),
    got: '"/etc/dsvm"',
  },
  {
    name: "workspace root in the agent's own state",
    yaml: `${D}\nworkspace: { root: /var/lib/dsvm-agent/ws }`,
    path: 'workspace.root',
    message: SYSTEM_TREE('/var/lib/dsvm-agent'),
    got: '"/var/lib/dsvm-agent/ws"',
  },
  {
    name: 'metrics textfile on /etc/passwd',
    yaml: `${D}\nhealth: { metricsTextfile: /etc/passwd }`,
    path: 'health.metricsTextfile',
    message: TEXTFILE_PLACE,
    got: '"/etc/passwd"',
  },
  {
    name: 'metrics textfile that node-exporter would not read',
    yaml: `${D}\nhealth: { metricsTextfile: /var/lib/prometheus/node-exporter/dsvm-agent.txt }`,
    path: 'health.metricsTextfile',
    message:
      "must end in .prom (the only files node-exporter's textfile collector reads): use e.g. /var/lib/prometheus/node-exporter/dsvm-agent.prom",
    got: '"/var/lib/prometheus/node-exporter/dsvm-agent.txt"',
  },
  {
    name: 'world-writable share directories',
    yaml: share('key: { file: /etc/k }, dirMode: "0777"'),
    path: 'share.dirMode',
    message: WORLD_WRITABLE,
    got: '"0777"',
  },
  {
    name: 'world-writable share files',
    yaml: share('key: { file: /etc/k }, fileMode: "0666"'),
    path: 'share.fileMode',
    message: WORLD_WRITABLE,
    got: '"0666"',
  },
  {
    name: 'minUid in the system range',
    yaml: `${D}\nworkspace: { minUid: 999 }`,
    path: 'workspace.minUid',
    message:
      'must be at least 1000 (uids below that are system accounts on Debian and Ubuntu, SYS_UID_MAX 999 in /etc/login.defs, and the agent never acts for them): raise it to 1000 or more',
    got: '999',
  },
  {
    name: 'share uid with a comma (one more mount option)',
    yaml: share('key: { file: /etc/k }, uid: "alice,setuids"'),
    path: 'share.uid',
    message: 'must be a user name or id: remove spaces, ",", "=", ":" and "/"',
    got: '"alice,setuids"',
  },
  {
    name: 'YAML alias expansion (billion laughs)',
    yaml: LAUGHS,
    path: '',
    message:
      'YAML aliases expand to more than 100 nodes (a resource exhaustion attack, or a mistake): write the values out instead of repeating *aliases',
  },
  {
    name: 'a config over 1 MiB',
    yaml: `# ${'x'.repeat(1024 * 1024)}`,
    path: '',
    message: 'is 1048578 bytes, over the 1048576 byte (1 MiB) limit: a config is a few kilobytes; check that --config names the right file',
  },
  {
    name: 'duplicate YAML key',
    yaml: `${D}\ndomain: {}`,
    path: '',
    message: 'YAML syntax: Map keys must be unique at line 2, column 1: keep one of the two keys (merge their contents)',
  },
];

t.test('bad configs name the key path, the problem, the fix and the offending value', async (t) => {
  t.ok(cases.length >= 40, 'at least 40 cases');
  for (const c of cases) {
    const issues = issuesOf(c.yaml);
    const hit = issues.find((i) => i.path === c.path);
    t.ok(hit, `${c.name}: an issue at "${c.path}" (got ${JSON.stringify(issues)})`);
    if (!hit) continue;
    t.equal(hit.message, c.message, `${c.name}: message`);
    t.equal(hit.got, c.got, `${c.name}: offending value ${c.got === undefined ? 'not shown' : 'shown'}`);
  }
});

t.test('every problem of a config is listed, each once, in document order', async (t) => {
  const yaml = [
    'domain:',
    '  name: CONTOSO',
    '  joinUser: j',
    '  joinPassword: { keyVault: { vaultUrl: "not a url", name: x } }',
    '  computerName: ABCDEFGHIJKLMNOP',
    'share: { account: acct1, name: ws1, key: { armListKeys: { subscriptionId: x, resourceGroup: rg } } }',
    'workspace: { minUid: 1.5, createHome: "yes" }',
    'repair: { maxAttempts: 0 }',
    'healthz: {}',
  ].join('\n');
  t.same(
    issuesOf(yaml).map((i) => i.path),
    [
      'domain.name',
      'domain.joinPassword.keyVault.vaultUrl',
      'domain.computerName',
      'share.key.armListKeys.subscriptionId',
      'workspace.minUid',
      'workspace.createHome',
      'repair.maxAttempts',
      'healthz',
    ],
  );
});

t.test('secret values never appear in error output', async (t) => {
  for (const yaml of [
    'domain: { name: c.com, joinUser: j, joinPassword: hunter2-secret }',
    'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p } }\nshare: { account: acct1, name: ws1, key: "c2VjcmV0a2V5c2VjcmV0" }',
    'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p, value: hunter2-secret } }',
    'domain: { name: c.com, joinUser: j, joinPassword: [hunter2-secret] }',
    'domain: { name: c.com, joinUser: j, oneTimePassword: hunter2-secret }',
    'domain: { name: c.com, joinUser: j, joinPassword: { file: /etc/p } }\nshare: { account: acct1, name: ws1, key: { file: /etc/k }, options: ["password=hunter2-secret"] }',
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
  t.same(issuesOf(''), [
    { path: '', message: 'is empty: write at least domain.name and the join secret (see /usr/share/dsvm-agent/config.example.yaml)' },
  ]);
  t.same(issuesOf('# only a comment\n'), issuesOf(''));
});
