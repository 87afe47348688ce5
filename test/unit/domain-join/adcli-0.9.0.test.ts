import t from 'tap';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { runTasks } from '../../../src/agent/task.js';
import { domainJoinTask } from '../../../src/tasks/domain-join/index.js';
import { testJoin } from '../../../src/tasks/domain-join/status.js';
import { vmIdStamp } from '../../../src/tasks/domain-join/computer-name.js';
import { adcliFeatures, directoryError, joinPrincipal, parseLdif } from '../../../src/tasks/domain-join/adcli-compat.js';
import type { RunResult } from '../../../src/agent/runner.js';
import { backoff, caught, DC, OTHER_VM, PASSWORD, primary, setup, type World } from './world.js';
import { captured } from './world-adcli-0.9.0.js';

const result = (r: Partial<RunResult>): RunResult => ({
  exitCode: 0,
  signal: null,
  stdout: '',
  stderr: '',
  timedOut: false,
  startError: null,
  durationMs: 1,
  ...r,
});

t.test('what adcli can do, from its own help (no adcli has --version)', async (t) => {
  const cases = [
    {
      name: 'adcli 0.9.0 (Debian 11, Ubuntu 20.04)',
      dir: 'adcli-0.9.0',
      want: { label: '0.9.0 or older', joinDescription: false, showComputer: false },
    },
    {
      name: 'adcli 0.9.1 (Debian 12, Ubuntu 22.04)',
      dir: 'adcli',
      want: { label: '0.9.1 or newer', joinDescription: true, showComputer: true },
    },
  ];
  for (const c of cases) {
    const help = captured(c.dir, 'help');
    const joinHelp = captured(c.dir, 'join-help');
    t.equal(help.exitCode, 0, `${c.name}: --help exits 0`);
    t.same(adcliFeatures(help.stdout!, joinHelp.stdout!), c.want, c.name);
    t.equal(captured(c.dir, 'version').exitCode, 2, `${c.name}: --version is an unknown option`);
  }
});

t.test('LDAP outputs captured from the lab DC parse into the facts the name rule needs', async (t) => {
  const stamped = parseLdif(captured('ldap', 'search-computer-stamped').stdout!);
  t.equal(stamped.length, 1, 'one entry; the referrals are comments');
  t.equal(stamped[0]?.dn, 'CN=CAPTEST1,OU=DSVM,DC=contoso,DC=test');
  t.same(stamped[0]?.attrs.description, ['dsvm-agent vmId=11111111-2222-3333-4444-555555555555']);
  t.same(stamped[0]?.attrs.samaccountname, ['CAPTEST1$']);
  t.same(parseLdif(captured('ldap', 'search-computer-missing').stdout!), [], 'no such computer: no entry');
  t.same(
    parseLdif('dn: CN=X,DC=a\ndescription:: ZMOpdsOpdA==\n'),
    [{ dn: 'CN=X,DC=a', attrs: { description: ['dévét'] } }],
    'base64 values',
  );
  t.equal(joinPrincipal('dsvm-join', 'contoso.test'), 'dsvm-join@CONTOSO.TEST');
  t.equal(joinPrincipal('dsvm-join@contoso.test', 'CONTOSO.TEST'), 'dsvm-join@CONTOSO.TEST');
  const cases = [
    { name: 'wrong join password', fixture: 'kinit-wrong-password', kind: 'permanent', reason: 'join-bad-credentials' },
    { name: 'DC unreachable', fixture: 'search-unreachable-dc', kind: 'transient', reason: 'dc-unreachable' },
    {
      name: "a computer's own keytab writing its description",
      fixture: 'modify-description-self',
      kind: 'permanent',
      reason: 'join-insufficient-rights',
    },
  ];
  for (const c of cases) {
    const err = directoryError('x', result(captured('ldap', c.fixture)), 'check the join account');
    t.equal(err.kind, c.kind, `${c.name}: ${c.kind}`);
    t.equal(err.reason, c.reason, `${c.name}: ${c.reason}`);
  }
  const missing = directoryError('ldapsearch', result({ exitCode: null, startError: 'ENOENT' }), '');
  t.match(missing.fix, /ldap-utils/, 'tools missing: names the packages');
});

t.test("runs the join against adcli 0.9.0's option set: same result, the vmId stamp over LDAP", async (t) => {
  const w: World = { existing: {}, ldap: { adcli: '0.9.0' } };
  const tc = await setup(w);
  const [out] = await runTasks([domainJoinTask], tc.ctx, { backoff });
  t.equal(out?.status, 'ok', out?.status === 'failed' ? out.error.describe() : 'converged');
  t.same(tc.runner.unexpected, [], 'no command adcli 0.9.0 refuses, nothing unexpected');
  const join = tc.runner.calls.find((c) => c.args?.[0] === 'join' && !c.args.includes('--help'))!;
  t.notOk(
    join.args!.some((a) => a.startsWith('--description')),
    'no --description for adcli 0.9.0',
  );
  t.equal(w.joinedAs, primary);
  t.equal(w.ldap?.joined?.description, vmIdStamp(tc.ctx.state.vmId), 'the computer object carries the vmId stamp');
  // The name is claimed first (naming.ts: an LDAP add with the stamp), then the stamp is made sure of after the join.
  t.equal(w.ldap?.modified?.length, 2, 'two ldapmodify: the claim, then the stamp');
  t.match(w.ldap?.modified?.[0], new RegExp(`^dn: CN=${primary},OU=DSVM,DC=contoso,DC=test\nchangetype: add\n`));
  t.match(w.ldap?.modified?.[1], new RegExp(`^dn: CN=${primary},OU=DSVM,DC=contoso,DC=test\nchangetype: modify\nreplace: description\n`));
  const tickets = w.ldap?.tickets ?? [];
  t.equal(tickets.length, 1, "one kinit of the join account: the claim's ticket serves the join and the stamp too");
  t.same(
    w.joinLogins,
    [{ ccache: tickets[0]?.ccache, ccacheThere: true, stdin: false }],
    "adcli 0.9.0's join logs in with that ticket (--login-ccache, which 0.9.0 has)",
  );
  t.ok(
    tickets.every((tk) => tk.stdin),
    'their password on stdin',
  );
  t.ok(
    tickets.every((tk) => tk.dirMode === 0o700),
    'their ccache in a 0700 directory',
  );
  t.notOk(
    tickets.some((tk) => existsSync(path.dirname(tk.ccache))),
    'removed afterwards',
  );
  const ldap = tc.runner.calls.filter((c) => c.file === 'ldapsearch' || c.file === 'ldapmodify');
  t.ok(
    ldap.every((c) => c.args!.includes(`ldap://${DC}`) && tickets.some((tk) => c.env?.KRB5CCNAME === `FILE:${tk.ccache}`)),
    "every LDAP call goes to the preflight's DC with one of those tickets",
  );
  t.notOk(
    tc.runner.calls.some(
      (c) => (c.args ?? []).some((a) => a.includes(PASSWORD)) || Object.values(c.env ?? {}).some((v) => v.includes(PASSWORD)),
    ),
    'the password in no argv and no environment',
  );
  t.same((await domainJoinTask.check(tc.ctx)).changes, [], 'a second check: nothing to change');
});

t.test('adcli 0.9.0: the name check is an LDAP search, with the same verdicts', async (t) => {
  const held: World = { existing: { [primary]: vmIdStamp(OTHER_VM) }, ldap: { adcli: '0.9.0' } };
  const tc = await setup(held);
  t.equal((await runTasks([domainJoinTask], tc.ctx, { backoff }))[0]?.status, 'ok');
  t.not(held.joinedAs, primary, 'a name another live VM holds is not taken');
  t.notOk(
    tc.runner.calls.some((c) => c.args?.[0] === 'show-computer'),
    'no show-computer',
  );
  const searched = tc.runner.calls
    .filter((c) => c.file === 'ldapsearch')
    .map((c) => /sAMAccountName=([^$]+)\$/.exec(c.args!.join(' '))?.[1]);
  t.same(searched.slice(0, 1), [primary], 'the held name was looked up over LDAP');

  const ours: World = { existing: {}, ldap: { adcli: '0.9.0' } };
  const tc2 = await setup(ours);
  ours.existing[primary] = vmIdStamp(tc2.ctx.state.vmId);
  t.equal((await runTasks([domainJoinTask], tc2.ctx, { backoff }))[0]?.status, 'ok');
  t.equal(ours.joinedAs, primary, 'our own stamp: the name is reused');
});

t.test('adcli 0.9.0 without a known DC: a clear error naming adcli and the fix', async (t) => {
  const w: World = { existing: { [primary]: vmIdStamp(OTHER_VM) }, ldap: { adcli: '0.9.0' } };
  const tc = await setup(w, {}, { preflightDc: false });
  const err = await caught(domainJoinTask.check(tc.ctx));
  t.equal(err.reason, 'adcli-too-old');
  t.match(err.message, /adcli 0\.9\.0 or older cannot do it/);
  t.match(err.fix, /dsvm-agent provision|adcli 0\.9\.1/);
  tc.ctx.state.facts.domainController = { host: DC, address: '10.77.0.2', clockOffsetMs: 0 };
  const found = await domainJoinTask.check(tc.ctx);
  t.ok(
    found.changes.some((c) => c.startsWith('join ')),
    'the DC the last preflight recorded will do',
  );
});

t.test('adcli 0.9.0 with a pre-staged account: joins, and says the stamp is missing and why', async (t) => {
  const w: World = { existing: {}, ldap: { adcli: '0.9.0' } };
  const tc = await setup(w, {
    joinUser: undefined,
    joinPassword: undefined,
    oneTimePassword: { file: '/etc/dsvm-agent/join-password' },
    computerName: 'PRESTAGED01',
  });
  const [out] = await runTasks([domainJoinTask], tc.ctx, { backoff });
  t.equal(out?.status, 'ok', out?.status === 'failed' ? out.error.describe() : 'joined');
  t.equal(w.joinedAs, 'PRESTAGED01');
  t.notOk(
    tc.runner.calls.some((c) => c.file === 'ldapmodify'),
    'nothing may write it without a join account',
  );
  t.match(
    tc.logLines.join('\n'),
    /adcli 0\.9\.0 or older has no join --description: the pre-staged account PRESTAGED01 gets no vmId stamp/,
  );
});

t.test(
  "adcli 0.9.0: the trust check authenticates the keytab's machine key with kinit -k, not testjoin (which names the machine after the host)",
  async (t) => {
    const w: World = { existing: {}, ldap: { adcli: '0.9.0' } };
    const tc = await setup(w);
    const [out] = await runTasks([domainJoinTask], tc.ctx, { backoff });
    t.equal(out?.status, 'ok');
    const ok = await testJoin(tc.ctx);
    t.same({ ok: ok.ok, computerName: ok.computerName }, { ok: true, computerName: primary }, 'joined, as the computer name in the keytab');
    t.same(w.ldap?.keytabLogins, [`${primary}$@CONTOSO.TEST`], "kinit -k for the keytab's own principal");
    t.notOk(
      tc.runner.calls.some((c) => c.args?.[0] === 'testjoin'),
      'no adcli testjoin',
    );
    const kinit = tc.runner.calls.find((c) => c.file === 'kinit' && c.args?.[0] === '-k')!;
    t.same(kinit.args, ['-k', '-t', tc.paths.krb5Keytab, `${primary}$@CONTOSO.TEST`]);
    t.equal(kinit.env?.KRB5CCNAME, 'MEMORY:', 'the ticket stays in the process and is gone with it');
    w.ldap!.keytabRefused = true;
    const refused = await testJoin(tc.ctx);
    t.equal(refused.ok, false, 'a refused machine key: not joined');
    t.match(refused.reason, /Preauthentication failed/);
    w.ldap!.keytabRefused = false;
    w.ldap!.kdcDown = true;
    const down = await caught(testJoin(tc.ctx));
    t.equal(down.kind, 'transient', 'no KDC: transient, never "not joined" (no rejoin during an outage)');
  },
);
