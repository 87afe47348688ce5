import t, { type Test } from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { testConfig } from '../../helpers/context.js';
import {
  addSssToNsswitch,
  joinFacts,
  removeSssFromNsswitch,
  renderKrb5Block,
  renderMkhomedirProfile,
  renderRealmdBlock,
  renderSshdDropIn,
  renderSssdConf,
  renderSudoers,
  setKrb5Block,
  sudoersGroup,
  MKHOMEDIR_SESSION_LINE,
} from '../../../src/tasks/domain-join/render.js';
import { setMarkedBlock } from '../../../src/agent/fsutil.js';

/** Golden files: set UPDATE_GOLDEN=1 to rewrite them after a deliberate change, then review the diff. */
const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/domain-join');
function golden(t: Test, name: string, actual: string): void {
  const file = path.join(FIXTURES, `${name}.golden`);
  if (process.env.UPDATE_GOLDEN === '1') writeFileSync(file, actual);
  t.equal(actual, readFileSync(file, 'utf8'), `${name} matches ${path.relative(process.cwd(), file)}`);
}

const base = { name: 'contoso.test', joinUser: 'dsvm-join', joinPassword: { file: '/etc/dsvm-agent/join-password' } };
const facts = joinFacts('Contoso.Test', 'dsvm-lab-cl1a2b');

const configs = [
  { name: 'defaults', domain: {} },
  { name: 'groups', domain: { allowGroups: ['dsvm-users'], sudoGroups: ['dsvm-admins', 'AAD DC Administrators'] } },
  {
    name: 'fqdn-names',
    domain: {
      fullyQualifiedNames: true,
      allowGroups: ['dsvm-users'],
      sudoGroups: ['dsvm-admins'],
      homeTemplate: '/home/%d/%u',
      shell: '/bin/zsh',
    },
  },
  {
    name: 'directory-options',
    domain: {
      allowGroups: ['dsvm-users'],
      sudoGroups: ['dsvm-admins'],
      idMapping: 'posix',
      denyGroups: ['contractors', 'Suspended Users'],
      dnsUpdate: false,
      sssdOptions: { ldap_referrals: false, ad_server: 'dc1.contoso.test, _srv_', entry_cache_timeout: 600 },
    },
  },
];

/**
 * What each Debian release's sssd accepts, per section: the ini_allowed_options
 * rules of its /usr/share/sssd/cfg_rules.ini (the rules `sssctl config-check`
 * and sssd's start apply), taken from the VM-image tier's bullseye, bookworm
 * and trixie images (section_re turned from POSIX basic into JS syntax).
 */
interface AllowedOptions {
  sssd: string;
  allowedOptions: { sectionRe: string[]; options: string[] }[];
}
const SSSD_RULES = JSON.parse(readFileSync(path.join(FIXTURES, 'sssd-allowed-options.json'), 'utf8')) as Record<string, AllowedOptions>;

/** The options of each section of an sssd.conf. */
function sssdSections(conf: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let section = '';
  for (const raw of conf.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const head = /^\[(.+)\]$/.exec(line);
    if (head) out.set((section = head[1]!), []);
    else out.get(section)?.push(line.split('=')[0]!.trim());
  }
  return out;
}

t.test("every option of the rendered sssd.conf is one each release's sssd accepts (sssd 2.10 refuses config_file_version)", async (t) => {
  t.same(Object.keys(SSSD_RULES), ['debian-bullseye', 'debian-bookworm', 'debian-trixie']);
  for (const [release, rules] of Object.entries(SSSD_RULES)) {
    for (const c of configs) {
      const d = testConfig({ domain: { ...base, ...c.domain } }).domain;
      const refused: string[] = [];
      for (const [section, options] of sssdSections(renderSssdConf(d, facts))) {
        const allowed = new Set(
          rules.allowedOptions.filter((r) => r.sectionRe.some((re) => new RegExp(re).test(section))).flatMap((r) => r.options),
        );
        for (const o of options) if (!allowed.has(o)) refused.push(`[${section}] ${o}`);
      }
      t.same(refused, [], `${release} (sssd ${rules.sssd}), ${c.name}: nothing it would refuse`);
    }
  }
  // The check can fail: the option sssd 2.10 dropped is refused by its rules and not by 2.8's.
  const has = (release: string): boolean =>
    SSSD_RULES[release]!.allowedOptions.some((r) => r.sectionRe.includes('^sssd$') && r.options.includes('config_file_version'));
  t.same([has('debian-bookworm'), has('debian-trixie')], [true, false], 'config_file_version: in 2.8, gone in 2.10');
});

t.test('sssd.conf, realmd block and sudoers for each config shape', async (t) => {
  for (const c of configs) {
    const d = testConfig({ domain: { ...base, ...c.domain } }).domain;
    golden(t, `sssd.conf.${c.name}`, renderSssdConf(d, facts));
    golden(t, `realmd.conf.${c.name}`, setMarkedBlock('', renderRealmdBlock(d, facts)));
    const sudo = renderSudoers(d, facts);
    if (c.name === 'defaults') t.equal(sudo, undefined, 'no sudoGroups: no sudoers file');
    else golden(t, `sudoers.${c.name}`, sudo ?? '');
  }
});

t.test('facts', async (t) => {
  t.same(facts, {
    domain: 'contoso.test',
    realm: 'CONTOSO.TEST',
    computerName: 'DSVM-LAB-CL1A2B',
    hostFqdn: 'dsvm-lab-cl1a2b.contoso.test',
  });
});

t.test('sssd.conf essentials', async (t) => {
  const d = testConfig({ domain: { ...base, allowGroups: ['dsvm-users'], sudoGroups: ['dsvm-admins', 'DSVM-Users'] } }).domain;
  const conf = renderSssdConf(d, facts);
  const cases: [string, RegExp][] = [
    ['ad provider', /^id_provider = ad$/m],
    ['simple access with allow + sudo groups, deduplicated case-insensitively', /^simple_allow_groups = dsvm-users, dsvm-admins$/m],
    ['short names', /^use_fully_qualified_names = False$/m],
    ['machine account of a long host name', /^ldap_sasl_authid = DSVM-LAB-CL1A2B\$$/m],
    ['home template', /^fallback_homedir = \/home\/%u$/m],
    ['credential caching', /^cache_credentials = True$/m],
    ['ids from the SIDs by default (idMapping: auto)', /^ldap_id_mapping = True$/m],
    ['DNS registration stated, on by default', /^dyndns_update = True$/m],
  ];
  for (const [name, re] of cases) t.match(conf, re, name);
});

t.test('krb5.conf block goes first and wins over the distribution defaults', async (t) => {
  const debian = '[libdefaults]\n\tdefault_realm = ATHENA.MIT.EDU\n\n[realms]\n\tATHENA.MIT.EDU = {\n\t\tkdc = kerberos.mit.edu\n\t}\n';
  const cases = [
    { name: 'krb5.conf.debian', before: debian },
    { name: 'krb5.conf.absent', before: undefined },
  ];
  for (const c of cases) {
    const once = setKrb5Block(c.before, renderKrb5Block(facts));
    golden(t, c.name, once);
    t.equal(setKrb5Block(once, renderKrb5Block(facts)), once, `${c.name}: idempotent`);
    t.equal(setKrb5Block(once, undefined), c.before ?? '', `${c.name}: removal restores the original`);
  }
  const other = joinFacts('fabrikam.test', 'X1');
  t.match(
    setKrb5Block(setKrb5Block(debian, renderKrb5Block(facts)), renderKrb5Block(other)),
    /^# BEGIN[^\n]*\n\[libdefaults\]\n\tdefault_realm = FABRIKAM\.TEST/,
    'replacing keeps the block at the top',
  );
});

t.test('nsswitch.conf', async (t) => {
  const cases = [
    {
      name: 'debian default without sss',
      before: 'passwd:         files systemd\ngroup:          files systemd\nshadow:         files\nhosts:          files dns\n',
      added: ['passwd', 'group', 'shadow'],
    },
    {
      name: 'already has sss (libnss-sss postinst)',
      before: 'passwd:         files systemd sss\ngroup:          files systemd sss\nshadow:         files sss\n',
      added: [],
    },
    { name: 'partially', before: 'passwd: files sss\ngroup: files\nshadow: files # local only\n', added: ['group', 'shadow'] },
    { name: 'missing lines', before: 'hosts: files dns\n', added: ['passwd', 'group', 'shadow'] },
  ];
  for (const c of cases) {
    const r = addSssToNsswitch(c.before);
    t.same(r.added, c.added, `${c.name}: added`);
    t.same(addSssToNsswitch(r.text).added, [], `${c.name}: idempotent`);
    for (const db of ['passwd', 'group', 'shadow']) t.match(r.text, new RegExp(`^${db}:.*\\bsss\\b`, 'm'), `${c.name}: ${db} has sss`);
    t.match(r.text, /hosts:|passwd:/, `${c.name}: other lines kept`);
    if (c.name !== 'missing lines') t.equal(removeSssFromNsswitch(r.text, r.added), c.before, `${c.name}: undo restores the file`);
  }
  golden(t, 'nsswitch.conf.debian', addSssToNsswitch(cases[0]!.before).text);
});

t.test('sudoers group names', async (t) => {
  const cases = [
    { name: 'plain', group: 'dsvm-admins', fq: false, want: '%dsvm-admins' },
    { name: 'spaces escaped, lower case', group: 'AAD DC Administrators', fq: false, want: '%aad\\ dc\\ administrators' },
    { name: 'qualified', group: 'dsvm-admins', fq: true, want: '%dsvm-admins@contoso.test' },
    { name: 'already qualified', group: 'admins@fabrikam.test', fq: true, want: '%admins@fabrikam.test' },
    { name: 'special characters escaped', group: 'a,b:c=d', fq: false, want: '%a\\,b\\:c\\=d' },
  ];
  for (const c of cases) t.equal(sudoersGroup(c.group, { fullyQualifiedNames: c.fq }, facts), c.want, c.name);
});

t.test('sshd drop-in and pam profile', async (t) => {
  golden(t, '10-dsvm-agent.conf', renderSshdDropIn());
  golden(t, 'dsvm-agent-mkhomedir', renderMkhomedirProfile());
  t.match(
    'session\toptional\t\t\tpam_mkhomedir.so umask=0077 skel=/etc/skel\n',
    MKHOMEDIR_SESSION_LINE,
    'detects the line pam-auth-update writes',
  );
  t.notMatch('session\toptional\t\t\tpam_mkhomedir.so\n', MKHOMEDIR_SESSION_LINE, "Debian's own profile (umask 0022) is not ours");
});

t.test('directory options in sssd.conf', async (t) => {
  const d = testConfig({
    domain: {
      ...base,
      allowGroups: ['dsvm-users'],
      idMapping: 'posix',
      denyGroups: ['contractors'],
      dnsUpdate: false,
      sssdOptions: { ldap_referrals: false, entry_cache_timeout: 600, re_expression: '(?P<name>[^@]+)' },
    },
  }).domain;
  const conf = renderSssdConf(d, facts);
  const cases: [string, RegExp][] = [
    ['posix ids', /^ldap_id_mapping = False$/m],
    ['deny groups', /^simple_deny_groups = contractors$/m],
    ['no DNS registration', /^dyndns_update = False$/m],
    ['a boolean option as sssd spells it', /^ldap_referrals = False$/m],
    ['a number', /^entry_cache_timeout = 600$/m],
    ['brackets inside a value stay a value', /^re_expression = \(\?P<name>\[\^@\]\+\)$/m],
  ];
  for (const [name, re] of cases) t.match(conf, re, name);
  t.equal((conf.match(/^ldap_id_mapping =/gm) ?? []).length, 1, 'each option once');
  const domainSection = conf.slice(conf.indexOf('[domain/'));
  t.match(domainSection, /ldap_referrals = False/, 'extra options in the [domain/...] section');
  t.match(setMarkedBlock('', renderRealmdBlock(d, facts)), /^automatic-id-mapping = no$/m, 'realmd agrees');
});

t.test('renderers refuse sssdOptions that reached them unchecked', async (t) => {
  const d = testConfig({ domain: { ...base } }).domain;
  const cases: [string, Record<string, string | number | boolean>, RegExp][] = [
    [
      'an option the agent sets',
      { ldap_id_mapping: false },
      /domain\.sssdOptions\.ldap_id_mapping: is set by the agent itself.*domain\.idMapping/,
    ],
    ['a newline in a value', { ldap_referrals: 'false\n[sssd]' }, /domain\.sssdOptions\.ldap_referrals: must not contain a newline/],
    ['a section in a key', { '[sssd]\nservices': 'x' }, /is not an sssd option name/],
  ];
  for (const [name, sssdOptions, re] of cases) t.throws(() => renderSssdConf({ ...d, sssdOptions }, facts), re, name);
});

// The installed sssd's own rules (cfg_rules.ini) on what the renderer writes,
// as the join runs them before installing the file. sssctl wants the file
// root-owned, so this runs only as root.
const sssctl = spawnSync('sssctl', ['--help'], { encoding: 'utf8' });
t.test(
  'every rendered sssd.conf passes sssctl config-check; an unknown option does not',
  {
    skip: process.getuid?.() !== 0 || (sssctl.error !== null && sssctl.error !== undefined) ? 'needs root and sssctl (sssd-tools)' : false,
  },
  async (t) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'dsvm-sssctl-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    mkdirSync(path.join(dir, 'conf.d'));
    const check = (content: string) => {
      const file = path.join(dir, 'sssd.conf');
      writeFileSync(file, content, { mode: 0o600 });
      return spawnSync('sssctl', ['config-check', '-c', file, '-s', path.join(dir, 'conf.d')], { encoding: 'utf8' });
    };
    for (const c of configs) {
      const r = check(renderSssdConf(testConfig({ domain: { ...base, ...c.domain } }).domain, facts));
      t.equal(r.status, 0, `${c.name}: ${r.stdout}${r.stderr}`);
    }
    const typo = check(renderSssdConf(testConfig({ domain: { ...base, sssdOptions: { ldap_refferals: false } } }).domain, facts));
    t.equal(typo.status, 1, 'a misspelt option is refused');
    t.match(typo.stdout, /Attribute 'ldap_refferals' is not allowed/);
  },
);
