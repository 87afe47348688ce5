import t from 'tap';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunResult } from '../../../src/agent/runner.js';
import {
  adcliWords,
  existingFromShow,
  fileTimeToMs,
  isNoSuchComputer,
  joinArgv,
  keytabComputerName,
  parseAdcliError,
  parseShowComputer,
} from '../../../src/tasks/domain-join/adcli.js';

/** Real adcli 0.9.1 outputs captured in the lab against the Samba AD DC (test/fixtures/domain-join/adcli). */
const DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/domain-join/adcli');
function captured(name: string): RunResult {
  const read = (ext: string): string => readFileSync(path.join(DIR, `${name}.${ext}`), 'utf8');
  return {
    exitCode: Number(read('exit').trim()),
    signal: null,
    stdout: read('stdout'),
    stderr: read('stderr'),
    timedOut: false,
    startError: null,
    durationMs: 1,
  };
}

t.test('classification of real adcli failures', async (t) => {
  const cases = [
    { name: 'join-wrong-password', kind: 'permanent', reason: 'join-bad-credentials', words: /Preauthentication failed/ },
    { name: 'join-unknown-user', kind: 'permanent', reason: 'join-bad-credentials', words: /not found in Kerberos database/ },
    { name: 'join-ou-missing', kind: 'permanent', reason: 'join-ou-missing', words: /organizational unit does not exist: OU=Missing/ },
    {
      name: 'join-insufficient-rights',
      kind: 'permanent',
      reason: 'join-insufficient-rights',
      words: /Insufficient permissions to modify computer account/,
    },
    { name: 'join-dc-unreachable', kind: 'transient', reason: 'dc-unreachable', words: /No route to host/ },
    { name: 'join-wrong-domain', kind: 'transient', reason: 'dc-unreachable', words: /usable domain controller/ },
    { name: 'testjoin-account-deleted', kind: 'permanent', reason: 'join-bad-credentials', words: /CAPTEST1\$@CONTOSO.TEST/ },
  ];
  for (const c of cases) {
    const r = captured(c.name);
    t.not(r.exitCode, 0, `${c.name}: captured a failure`);
    const err = parseAdcliError('join', r, { user: 'dsvm-join', ou: 'OU=Missing,DC=contoso,DC=test' });
    t.equal(err.kind, c.kind, `${c.name}: kind`);
    t.equal(err.reason, c.reason, `${c.name}: reason`);
    t.match(err.message, c.words, `${c.name}: keeps the DC's own words`);
    t.ok(err.fix && err.fix.length > 10, `${c.name}: has a fix`);
  }
});

t.test('a pre-staged join that the DC refuses: the fix names the staged account and the one-time password', async (t) => {
  const r: RunResult = {
    exitCode: 1,
    signal: null,
    stdout: '',
    stderr:
      "adcli: couldn't connect to contoso.test domain: Couldn't authenticate as machine account: DSVM01: Client 'DSVM01$@CONTOSO.TEST' not found in Kerberos database\n",
    timedOut: false,
    startError: null,
    durationMs: 1,
  };
  const err = parseAdcliError('join', r, { prestaged: 'DSVM01' });
  t.equal(err.reason, 'join-bad-credentials');
  t.match(err.fix, /pre-staged computer account DSVM01\$ must exist.*domain\.oneTimePassword/);
  t.notMatch(err.fix, /joinUser/, 'no word of a join account the config does not have');
  t.match(
    parseAdcliError('join', r, { user: 'dsvm-join' }).fix,
    /domain\.joinUser \(dsvm-join\)/,
    'a user join still names the join account',
  );
});

t.test('synthetic failures', async (t) => {
  const base: RunResult = { exitCode: 1, signal: null, stdout: '', stderr: '', timedOut: false, startError: null, durationMs: 1 };
  const cases = [
    { name: 'not installed', r: { ...base, exitCode: null, startError: 'ENOENT' }, kind: 'permanent', reason: 'adcli-missing' },
    { name: 'timed out', r: { ...base, exitCode: null, timedOut: true }, kind: 'transient', reason: 'dc-unreachable' },
    {
      name: 'KDC down',
      r: {
        ...base,
        stderr:
          "adcli: couldn't connect to contoso.test domain: Couldn't get kerberos ticket for: dsvm-join@CONTOSO.TEST: Cannot contact any KDC for realm 'CONTOSO.TEST'\n",
      },
      kind: 'transient',
      reason: 'dc-unreachable',
    },
    {
      name: 'clock skew',
      r: {
        ...base,
        stderr: "adcli: couldn't connect to contoso.test domain: Couldn't authenticate as: dsvm-join@CONTOSO.TEST: Clock skew too great\n",
      },
      kind: 'permanent',
      reason: 'clock-skew',
    },
    {
      name: 'unknown error keeps the words',
      r: { ...base, stderr: 'adcli: joining domain contoso.test failed: Something new\n' },
      kind: 'permanent',
      reason: 'join-failed',
    },
    {
      name: 'verbose progress lines are not errors',
      r: {
        ...base,
        stderr:
          " * A computer account for X$ does not exist\n * Couldn't find a thing\nadcli: joining domain contoso.test failed: Insufficient permissions to modify computer account\n",
      },
      kind: 'permanent',
      reason: 'join-insufficient-rights',
    },
  ];
  for (const c of cases) {
    const err = parseAdcliError('join', c.r);
    t.equal(err.kind, c.kind, `${c.name}: kind`);
    t.equal(err.reason, c.reason, `${c.name}: reason`);
  }
  t.equal(
    adcliWords({ stdout: '', stderr: 'adcli: joining domain contoso.test failed: Something new\n' }),
    'joining domain contoso.test failed: Something new',
  );
});

t.test('show-computer', async (t) => {
  const attrs = parseShowComputer(captured('show-computer-ok').stdout);
  t.same(attrs.samaccountname, ['CAPTEST1$']);
  t.same(attrs.userprincipalname, [], '"- not set -" is no value');
  t.equal(attrs.serviceprincipalname?.length, 4, 'multi-valued');
  const existing = existingFromShow(attrs);
  t.equal(existing.description, 'dsvm-agent vmId=11111111-2222-3333-4444-555555555555');
  t.ok(
    existing.pwdLastSet && existing.pwdLastSet > Date.parse('2024-01-01') && existing.pwdLastSet < Date.parse('2100-01-01'),
    'pwdLastSet converted from FILETIME',
  );
  t.ok(isNoSuchComputer(captured('show-computer-missing')), 'missing object recognised');
  t.ok(isNoSuchComputer(captured('delete-computer-missing')), 'delete of a missing object recognised');
  t.notOk(isNoSuchComputer(captured('join-dc-unreachable')), 'a connection failure is not "missing"');
  const cases = [
    { name: 'zero is never', v: '0', want: undefined },
    { name: 'max is never', v: '9223372036854775807', want: undefined },
    { name: 'unix epoch', v: '116444736000000000', want: 0 },
    { name: 'garbage', v: 'abc', want: undefined },
  ];
  for (const c of cases) t.equal(fileTimeToMs(c.v), c.want, `FILETIME ${c.name}`);
});

t.test('keytab principal', async (t) => {
  const cases = [
    { name: 'captured klist -k', text: captured('klist-keytab').stdout, realm: 'CONTOSO.TEST', want: 'CAPTEST1' },
    { name: 'realm compared case-insensitively', text: captured('klist-keytab').stdout, realm: 'contoso.test', want: 'CAPTEST1' },
    { name: 'other realm', text: captured('klist-keytab').stdout, realm: 'FABRIKAM.TEST', want: undefined },
    {
      name: 'with timestamps (klist -kt)',
      text: '   2 01/01/2026 10:00:00 DSVM-A1$@CONTOSO.TEST\n',
      realm: 'CONTOSO.TEST',
      want: 'DSVM-A1',
    },
    { name: 'only host principals', text: '   2 host/X@CONTOSO.TEST\n', realm: 'CONTOSO.TEST', want: undefined },
  ];
  for (const c of cases) t.equal(keytabComputerName(c.text, c.realm), c.want, c.name);
});

t.test('join argv carries no secret: the password from stdin, or the join account ticket', async (t) => {
  const cases = [
    {
      name: 'join account',
      credentials: { kind: 'user' as const, user: 'dsvm-join' },
      want: ['--login-type=user', '--login-user=dsvm-join', '--stdin-password'],
      not: ['--login-ccache'],
    },
    {
      name: 'join account with its ticket',
      credentials: { kind: 'user' as const, user: 'dsvm-join', ccache: 'FILE:/tmp/dsvm-agent-ldap-x/ccache' },
      want: ['--login-type=user', '--login-user=dsvm-join', '--login-ccache=FILE:/tmp/dsvm-agent-ldap-x/ccache'],
      not: ['--stdin-password'],
    },
    {
      name: 'pre-staged one-time password',
      credentials: { kind: 'computer' as const },
      want: ['--login-type=computer', '--stdin-password'],
      not: ['--login-ccache'],
    },
  ];
  for (const c of cases) {
    const argv = joinArgv({
      domain: 'contoso.test',
      realm: 'CONTOSO.TEST',
      computerName: 'X1',
      hostFqdn: 'x1.contoso.test',
      keytab: '/etc/krb5.keytab',
      ou: 'OU=DSVM,DC=contoso,DC=test',
      description: 'dsvm-agent vmId=1',
      credentials: c.credentials,
    });
    for (const w of c.want) t.ok(argv.includes(w), `${c.name}: ${w}`);
    for (const n of c.not)
      t.notOk(
        argv.some((a) => a.startsWith(n)),
        `${c.name}: no ${n}`,
      );
    t.notOk(
      argv.some((a) => a.startsWith('--one-time-password')),
      `${c.name}: no --one-time-password (argv)`,
    );
    t.ok(argv.includes('--domain-ou=OU=DSVM,DC=contoso,DC=test'), `${c.name}: OU`);
  }
});
