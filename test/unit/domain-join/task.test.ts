import t from 'tap';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { runTasks } from '../../../src/agent/task.js';
import { domainJoinTask } from '../../../src/tasks/domain-join/index.js';
import { undoJoin } from '../../../src/tasks/domain-join/undo.js';
import { vmIdStamp } from '../../../src/tasks/domain-join/computer-name.js';
import { backoff, caught, DC, OTHER_VM, PASSWORD, primary, setup, type World } from './world.js';

t.test('fresh VM: joins, writes every file, starts sssd; a second run changes nothing', async (t) => {
  const w: World = { existing: {} };
  const tc = await setup(w);
  const out = await runTasks([domainJoinTask], tc.ctx, { backoff });
  t.equal(out[0]?.status, 'ok', JSON.stringify(out[0]));
  t.equal(w.joinedAs, primary, 'joined under the derived name');
  t.same(tc.runner.unexpected, [], 'no unexpected command');
  const join = tc.runner.calls.find((c) => c.args?.[0] === 'join' && !c.args.includes('--help'))!;
  // The claim's ticket (naming.ts) is the join's login: one authentication of the join account, not two.
  const tickets = w.ldap?.tickets ?? [];
  t.equal(tickets.length, 1, 'one kinit of the join account (the claim), password on stdin');
  t.ok(tickets[0]?.stdin, "the claim's kinit read the password from stdin");
  t.same(
    w.joinLogins,
    [{ ccache: tickets[0]?.ccache, ccacheThere: true, stdin: false }],
    "adcli join logs in with the claim's ticket (--login-ccache), still there when it runs, and gets no password",
  );
  t.equal(join.input, undefined, "nothing on the join's stdin");
  t.notOk(existsSync(path.dirname(tickets[0]!.ccache)), 'the ticket is removed after the join');
  t.notOk(
    tc.runner.calls.some((c) => (c.args ?? []).some((a) => a.includes(PASSWORD))),
    'password in no argv',
  );
  t.ok(join.args!.includes(`--description=${vmIdStamp(tc.ctx.state.vmId)}`), 'stamped with the vmId');
  t.ok(join.args!.includes('--domain-ou=OU=DSVM,DC=contoso,DC=test'), 'OU');
  t.ok(join.args!.includes(`--domain-controller=${DC}`), "joins at the DC that answered the name check (the preflight's)");
  t.same(w.kdcAsked, [DC], 'the name check asked that DC');
  t.equal(statSync(tc.paths.sssdConf).mode & 0o777, 0o600, 'sssd.conf is 0600');
  t.equal(statSync(path.join(tc.paths.sudoersDir, 'dsvm-agent')).mode & 0o777, 0o440, 'sudoers drop-in is 0440');
  t.match(
    readFileSync(tc.paths.krb5Conf, 'utf8'),
    /^# BEGIN dsvm-agent[^\n]*\n\[libdefaults\]\n\tdefault_realm = CONTOSO.TEST/,
    'krb5 block first',
  );
  t.match(readFileSync(tc.paths.nsswitchConf, 'utf8'), /^passwd: files systemd sss$/m, 'nsswitch has sss');
  t.ok(tc.services.actions.includes('restart sssd'), 'sssd (re)started');
  t.notOk(
    tc.logLines.some((l) => l.includes(PASSWORD)),
    'password in no log line',
  );
  t.same(
    tc.runner.calls.filter((c) => c.args?.includes('--help')).map((c) => c.args!.join(' ')),
    ['--help', 'join --help'],
    'what this adcli can do is asked once, from its help (local, no network), and only because it joins',
  );
  t.same(
    tc.runner.calls
      .filter((c) => (c.file === 'adcli' && !c.args?.includes('--help')) || c.file === 'pam-auth-update')
      .map((c) => `${c.file} ${c.args?.[0]}`),
    ['adcli join', 'pam-auth-update --package'],
    'the KDC says the name is free (no LDAP look-up); adcli starts first, home creation is enabled while it joins; the check after the join asks the DC nothing more',
  );

  t.equal(
    tc.runner.calls.find((c) => c.file === 'pam-auth-update')?.nice,
    10,
    'pam-auth-update beside the join runs at a lower CPU priority',
  );

  const before = tc.runner.calls.length;
  const again = await runTasks([domainJoinTask], tc.ctx, { backoff });
  t.same(
    again[0],
    { id: 'domain-join', status: 'ok', changed: false, changes: [], attempts: 1, warnings: [] },
    'second run: nothing to do',
  );
  t.notOk(
    tc.runner.calls.slice(before).some((c) => c.args?.[0] === 'join' || c.file === 'pam-auth-update'),
    'no join, no pam change',
  );
});

t.test('the check after a join trusts only the keytab the join wrote: another writer means testjoin again', async (t) => {
  const w: World = { existing: {} };
  const tc = await setup(w);
  t.equal((await runTasks([domainJoinTask], tc.ctx, { backoff }))[0]?.status, 'ok');
  t.notOk(
    tc.runner.calls.some((c) => c.args?.[0] === 'testjoin'),
    'no testjoin right after the join',
  );
  await writeFile(tc.paths.krb5Keytab, 'another-keytab-with-other-bytes', { mode: 0o600 });
  await domainJoinTask.check(tc.ctx);
  t.equal(tc.runner.calls.filter((c) => c.args?.[0] === 'testjoin').length, 1, 'a rewritten keytab is tested against the DC');

  const w2: World = { existing: {} };
  const tc2 = await setup(w2);
  t.equal((await runTasks([domainJoinTask], tc2.ctx, { backoff }))[0]?.status, 'ok');
  await domainJoinTask.check(tc2.ctx);
  t.equal(tc2.runner.calls.filter((c) => c.args?.[0] === 'testjoin').length, 0, 'the same keytab, moments later: still trusted');
  await tc2.ctx.clock.sleep(61_000);
  await domainJoinTask.check(tc2.ctx);
  t.equal(tc2.runner.calls.filter((c) => c.args?.[0] === 'testjoin').length, 1, 'a minute later the DC is asked again');
});

t.test('wrong password: one attempt, the DC words, nothing left claiming a join', async (t) => {
  const w: World = {
    existing: {},
    joinFails:
      " * Wrote out krb5.conf snippet\n ! Couldn't authenticate as: dsvm-join@CONTOSO.TEST: Preauthentication failed\nadcli: couldn't connect to contoso.test domain: Couldn't authenticate as: dsvm-join@CONTOSO.TEST: Preauthentication failed\n",
  };
  const tc = await setup(w);
  const krb5Before = readFileSync(tc.paths.krb5Conf, 'utf8');
  const out = await runTasks([domainJoinTask], tc.ctx, { backoff });
  t.equal(out[0]?.status, 'failed');
  if (out[0]?.status === 'failed') {
    t.equal(out[0].attempts, 1, 'not retried');
    t.equal(out[0].error.reason, 'join-bad-credentials');
    t.match(out[0].error.message, /Preauthentication failed/);
  }
  t.notOk(existsSync(tc.paths.sssdConf), 'no sssd.conf');
  t.notOk(existsSync(tc.paths.krb5Keytab), 'no keytab');
  t.equal(readFileSync(tc.paths.krb5Conf, 'utf8'), krb5Before, 'krb5.conf untouched');
  t.equal(w.joinLogins?.[0]?.ccacheThere, true, "the join had the claim's ticket");
  t.notOk(existsSync(path.dirname(w.joinLogins![0]!.ccache!)), 'which is gone after the failed join');
  t.notOk(existsSync(path.join(tc.paths.sudoersDir, 'dsvm-agent')), 'no sudoers drop-in');
});

t.test('a sudoers drop-in visudo refuses: nothing joined, nothing written', async (t) => {
  const w: World = { existing: {}, visudoFails: '/var/lib/dsvm-agent/tmp/sudoers.candidate:1:12: syntax error' };
  const tc = await setup(w);
  const krb5Before = readFileSync(tc.paths.krb5Conf, 'utf8');
  const out = await runTasks([domainJoinTask], tc.ctx, { backoff });
  t.equal(out[0]?.status, 'failed');
  if (out[0]?.status === 'failed') {
    t.equal(out[0].error.reason, 'sudoers-invalid');
    t.equal(out[0].attempts, 1, 'permanent: not retried');
    t.match(out[0].error.fix, /domain\.sudoGroups/);
  }
  t.notOk(
    tc.runner.calls.some((c) => c.args?.[0] === 'join' && !c.args.includes('--help')),
    'adcli join never ran',
  );
  t.equal(w.joinedAs, undefined);
  t.notOk(existsSync(path.join(tc.paths.sudoersDir, 'dsvm-agent')), 'no sudoers drop-in');
  t.notOk(existsSync(tc.paths.sssdConf), 'no sssd.conf');
  t.equal(readFileSync(tc.paths.krb5Conf, 'utf8'), krb5Before, 'krb5.conf untouched');
});

t.test('an sssd.conf the installed sssd refuses (sssctl config-check): nothing joined, nothing written', async (t) => {
  const w: World = {
    existing: {},
    sssctlFails:
      "[rule/allowed_domain_options]: Attribute 'ldap_refferals' is not allowed in section 'domain/contoso.test'. Check for typos.",
  };
  const tc = await setup(w, { sssdOptions: { ldap_refferals: false } });
  const out = await runTasks([domainJoinTask], tc.ctx, { backoff });
  t.equal(out[0]?.status, 'failed');
  if (out[0]?.status === 'failed') {
    t.equal(out[0].error.reason, 'sssd-conf-invalid');
    t.equal(out[0].attempts, 1, 'permanent: not retried');
    t.match(out[0].error.message, /Attribute 'ldap_refferals' is not allowed/, "sssctl's own words");
    t.notMatch(out[0].error.message, /Issues identified by validators/, 'without the counts');
    t.match(out[0].error.fix, /domain\.sssdOptions/);
  }
  const check = tc.runner.calls.find((c) => c.file === 'sssctl');
  t.ok(check, 'sssctl ran');
  t.notOk(
    tc.runner.calls.some((c) => c.args?.[0] === 'join' && !c.args.includes('--help')),
    'adcli join never ran',
  );
  t.notOk(existsSync(tc.paths.sssdConf), 'no sssd.conf');
  t.notOk(existsSync(path.join(tc.paths.stateDir, 'tmp', 'sssd.conf.candidate')), 'no candidate left');
});

t.test('sssd fails to start after the join: files and keytab rolled back', async (t) => {
  const w: World = { existing: {} };
  const tc = await setup(w);
  tc.services.restart = async () => {
    throw new Error('sssd exited 4');
  };
  const nsBefore = readFileSync(tc.paths.nsswitchConf, 'utf8');
  t.equal((await caught(domainJoinTask.apply(tc.ctx, await domainJoinTask.check(tc.ctx)))).reason, 'sssd-start-failed');
  t.notOk(existsSync(tc.paths.sssdConf), 'sssd.conf removed');
  t.notOk(existsSync(tc.paths.krb5Keytab), 'keytab removed');
  t.equal(readFileSync(tc.paths.nsswitchConf, 'utf8'), nsBefore, 'nsswitch restored');
  t.ok(
    tc.runner.calls.some((c) => c.file === 'pam-auth-update' && c.args?.includes('--remove')),
    'pam profile disabled again',
  );
});

t.test('name collisions', async (t) => {
  const cases = [
    { name: 'primary held by another live VM: an alternate', existing: { [primary]: vmIdStamp(OTHER_VM) }, alternate: true },
    { name: 'primary stamped with our own vmId: reused', existing: { [primary]: 'x' }, ours: true, alternate: false },
    { name: 'primary free', existing: {}, alternate: false },
  ];
  for (const c of cases) {
    const w: World = { existing: { ...c.existing } };
    const tc = await setup(w);
    if (c.ours) w.existing[primary] = vmIdStamp(tc.ctx.state.vmId);
    const out = await runTasks([domainJoinTask], tc.ctx, { backoff });
    t.equal(out[0]?.status, 'ok', `${c.name}: ok`);
    t.equal(w.joinedAs !== primary, c.alternate, `${c.name}: joined as ${w.joinedAs}`);
    t.ok(w.joinedAs && w.joinedAs.length <= 15, `${c.name}: name fits`);
    const shown = tc.runner.calls.filter((x) => x.args?.[0] === 'show-computer').map((x) => x.args!.at(-1));
    t.same(
      shown,
      Object.keys(w.existing).filter((n) => n !== w.joinedAs || c.ours),
      `${c.name}: LDAP look-up only of names the KDC knows`,
    );
    t.ok(
      tc.runner.calls.filter((x) => x.args?.[0] === 'show-computer').every((x) => x.args!.includes(`--domain-controller=${DC}`)),
      `${c.name}: the LDAP look-up asks the same DC`,
    );
  }
  // No DC from this run's preflight (a daemon's repair long after first boot):
  // no KDC shortcut, adcli discovers a DC for the look-up and the join alike.
  const noDc: World = { existing: { [primary]: vmIdStamp(OTHER_VM) } };
  const tcNoDc = await setup(noDc, {}, { preflightDc: false });
  t.equal((await runTasks([domainJoinTask], tcNoDc.ctx, { backoff }))[0]?.status, 'ok');
  t.not(noDc.joinedAs, primary, 'no preflight DC: the held name is still not taken');
  t.notOk(
    tcNoDc.runner.calls.some((x) => x.file === 'kinit'),
    'no KDC question without a DC to ask',
  );
  t.notOk(
    tcNoDc.runner.calls.some((x) => (x.args ?? []).some((a) => a.startsWith('--domain-controller'))),
    'adcli discovers the DC',
  );
  t.same(noDc.joinLogins, [{ stdin: true }], 'no claim, so no ticket: adcli join reads the password from stdin');
  // A KDC that cannot be asked says nothing: the LDAP look-up decides, and still finds the holder.
  const down: World = { existing: { [primary]: vmIdStamp(OTHER_VM) }, kdcDown: true };
  const tcDown = await setup(down);
  t.equal((await runTasks([domainJoinTask], tcDown.ctx, { backoff }))[0]?.status, 'ok');
  t.not(down.joinedAs, primary, 'KDC unreachable: the held name is still not taken');
  t.equal(tcDown.runner.calls.filter((x) => x.args?.[0] === 'show-computer').length, 2, 'both names looked up over LDAP');
  const w: World = { existing: {} };
  const tc = await setup(w, { computerName: 'FIXED01' });
  w.existing.FIXED01 = vmIdStamp(OTHER_VM);
  const taken = await caught(domainJoinTask.check(tc.ctx));
  t.equal(taken.reason, 'computer-name-taken', 'explicit name held by a live VM: permanent error');
  t.equal(taken.kind, 'permanent');
});

t.test('joined host is never renamed, and a DC outage is transient', async (t) => {
  const w: World = { existing: {}, joinedAs: 'OLDNAME01' };
  const tc = await setup(w);
  tc.ctx.state.facts.computerName = 'OLDNAME01';
  await writeFile(tc.paths.krb5Keytab, 'keytab-bytes', { mode: 0o600 });
  const found = await domainJoinTask.check(tc.ctx);
  t.notOk(
    found.changes.some((c) => c.startsWith('join ')),
    'no join',
  );
  t.match(readFileSync(path.join(tc.paths.root, 'etc/krb5.conf'), 'utf8'), /ATHENA/, 'check wrote nothing');
  await domainJoinTask.apply(tc.ctx, found);
  t.match(readFileSync(tc.paths.sssdConf, 'utf8'), /ldap_sasl_authid = OLDNAME01\$/, 'config uses the keytab name');
  w.testjoinFails =
    "adcli: couldn't connect to contoso.test domain: Couldn't get kerberos ticket for machine account: OLDNAME01: Cannot contact any KDC for realm 'CONTOSO.TEST'\n";
  const outage = await caught(domainJoinTask.check(tc.ctx));
  t.equal(outage.kind, 'transient', 'DC outage during testjoin is transient');
  t.equal(outage.reason, 'dc-unreachable');
});

t.test('a broken join whose name another live VM now holds: rejoin under another name, never take it back', async (t) => {
  const w: World = {
    existing: { OLDNAME01: vmIdStamp(OTHER_VM) },
    joinedAs: 'OLDNAME01',
    testjoinFails:
      "adcli: couldn't connect to contoso.test domain: Couldn't get kerberos ticket for machine account: OLDNAME01$: Preauthentication failed\n",
  };
  const tc = await setup(w);
  tc.ctx.state.facts.computerName = 'OLDNAME01';
  await writeFile(tc.paths.krb5Keytab, 'keytab-bytes', { mode: 0o600 });
  const held = (await domainJoinTask.check(tc.ctx)).changes.find((c) => c.startsWith('join '));
  t.match(held, new RegExp(`^join CONTOSO\\.TEST as ${primary} `), `joins as ${primary}, not under the name another live VM holds`);
  t.match(tc.logLines.join('\n'), /OLDNAME01 is now held by 0b6d4f7e/, 'says why');
  w.existing.OLDNAME01 = vmIdStamp(tc.ctx.state.vmId);
  const own = (await domainJoinTask.check(tc.ctx)).changes.find((c) => c.startsWith('join '));
  t.match(own, /^join CONTOSO\.TEST as OLDNAME01 /, 'its own object (password reset, say): same name');
  delete w.existing.OLDNAME01;
  const gone = (await domainJoinTask.check(tc.ctx)).changes.find((c) => c.startsWith('join '));
  t.match(gone, /^join CONTOSO\.TEST as OLDNAME01 /, 'object deleted: same name');
});

t.test('undo removes every trace and restores shared files', async (t) => {
  const w: World = { existing: {} };
  const tc = await setup(w);
  const nsBefore = readFileSync(tc.paths.nsswitchConf, 'utf8');
  const krbBefore = readFileSync(tc.paths.krb5Conf, 'utf8');
  await runTasks([domainJoinTask], tc.ctx, { backoff });
  tc.runner.on({ file: 'adcli', args: (a) => a[0] === 'delete-computer' });
  const removed = await undoJoin(tc.ctx, { leaveDomain: true });
  t.ok(
    removed.some((r) => r.startsWith('computer account')),
    'left the domain',
  );
  t.equal(tc.runner.calls.find((c) => c.args?.[0] === 'delete-computer')?.input, PASSWORD, 'delete-computer password on stdin');
  t.notOk(existsSync(tc.paths.sssdConf));
  t.notOk(existsSync(tc.paths.krb5Keytab));
  t.equal(readFileSync(tc.paths.krb5Conf, 'utf8'), krbBefore, 'krb5.conf as before');
  t.equal(readFileSync(tc.paths.nsswitchConf, 'utf8'), nsBefore, 'nsswitch as before');
  const second = await undoJoin(tc.ctx, { leaveDomain: false });
  t.same(second, [], `second undo: nothing left (${second.join(', ')})`);
});

t.test('leaving the domain retries a busy DC, but not bad credentials', async (t) => {
  const busy = "adcli: couldn't connect to contoso.test domain: Couldn't find usable domain controller to connect to\n";
  {
    const tc = await setup({ existing: {} });
    await runTasks([domainJoinTask], tc.ctx, { backoff });
    tc.runner.on({ file: 'adcli', args: (a) => a[0] === 'delete-computer', times: 2, result: { exitCode: 1, stderr: busy } });
    tc.runner.on({ file: 'adcli', args: (a) => a[0] === 'delete-computer' });
    const removed = await undoJoin(tc.ctx, { leaveDomain: true });
    t.ok(
      removed.some((r) => r.startsWith('computer account')),
      'left the domain on the third try',
    );
    t.equal(tc.runner.calls.filter((c) => c.args?.[0] === 'delete-computer').length, 3, 'three attempts');
    t.equal(tc.logLines.filter((l) => /delete the computer account: attempt \d failed, retrying/.test(l)).length, 2, 'each retry logged');
  }
  {
    const tc = await setup({ existing: {} });
    await runTasks([domainJoinTask], tc.ctx, { backoff });
    tc.runner.on({
      file: 'adcli',
      args: (a) => a[0] === 'delete-computer',
      result: { exitCode: 1, stderr: "adcli: couldn't connect to contoso.test domain: Preauthentication failed\n" },
    });
    const err = await caught(undoJoin(tc.ctx, { leaveDomain: true }));
    t.equal(err.reason, 'join-bad-credentials');
    t.equal(tc.runner.calls.filter((c) => c.args?.[0] === 'delete-computer').length, 1, 'bad credentials: one attempt');
    t.ok(existsSync(tc.paths.sssdConf), 'nothing removed while the account could not be deleted');
  }
  {
    const tc = await setup({ existing: {} });
    await runTasks([domainJoinTask], tc.ctx, { backoff });
    tc.runner.on({ file: 'adcli', args: (a) => a[0] === 'delete-computer', result: { exitCode: 1, stderr: busy } });
    const err = await caught(undoJoin(tc.ctx, { leaveDomain: true }));
    t.equal(err.kind, 'transient', 'a DC down for good: still transient after the budget');
    const tries = tc.runner.calls.filter((c) => c.args?.[0] === 'delete-computer').length;
    t.ok(tries > 1 && tries <= 6, `bounded attempts (${tries})`);
  }
});

t.test('domain.dnsUpdate: the capability removes the DNS record before the account, and not at all when off', async (t) => {
  const { domainJoinCapability } = await import('../../../src/tasks/domain-join/capability.js');
  for (const dnsUpdate of [true, false]) {
    const tc = await setup({ existing: {} }, { dnsUpdate });
    await runTasks([domainJoinTask], tc.ctx, { backoff });
    const order: string[] = [];
    // sssd re-registers a removed record while it runs: it must be stopped when the record goes.
    const cap = domainJoinCapability({
      removeDnsRecord: async () => (
        order.push(tc.services.active.has('sssd') ? 'dns while sssd runs' : 'dns'),
        'DNS record dsvm.contoso.test (A, AAAA) at dc1.contoso.test'
      ),
      leaveDomain: async () => (order.push('account'), 'computer account'),
    });
    tc.runner.on({ file: 'adcli', args: (a) => a[0] === 'delete-computer', result: () => (order.push('account'), {}) });
    tc.services.active.add('sssd');
    const removed = await cap.deprovision!.undo(tc.ctx, { leaveDomain: true });
    t.same(order, dnsUpdate ? ['dns', 'account'] : ['account'], `dnsUpdate ${dnsUpdate}: deprovision --leave-domain steps`);
    t.equal(
      removed.some((r) => r.startsWith('DNS record')),
      dnsUpdate,
      `dnsUpdate ${dnsUpdate}: the record ${dnsUpdate ? 'is' : 'is not'} in what was removed`,
    );
    order.length = 0;
    tc.services.active.add('sssd');
    for (const step of cap.terminate ?? []) await step.run(tc.ctx);
    t.same(order, dnsUpdate ? ['dns', 'account'] : ['account'], `dnsUpdate ${dnsUpdate}: scale-in steps`);
  }
});

t.test('deprovision --leave-domain: a DNS record that cannot be removed is a warning; the account still goes', async (t) => {
  const tc = await setup({ existing: {} });
  await runTasks([domainJoinTask], tc.ctx, { backoff });
  tc.runner.on({ file: 'adcli', args: (a) => a[0] === 'delete-computer' });
  const removed = await undoJoin(tc.ctx, {
    leaveDomain: true,
    removeDnsRecord: async () => {
      throw new Error('DNS record dsvm.contoso.test: nsupdate -g at dc1.contoso.test: exit 2');
    },
  });
  t.ok(
    removed.some((r) => r.startsWith('computer account')),
    'left the domain',
  );
  t.ok(
    tc.logLines.some((l) =>
      /nsupdate -g at dc1\.contoso\.test: exit 2: the computer account is deleted anyway; delete that DNS record by hand/.test(l),
    ),
    'warned, naming the record',
  );
});

t.test("the join account's ticket: asked for only by an apply that joins, and never left behind", async (t) => {
  const w: World = { existing: {} };
  const tc = await setup(w);
  t.equal((await runTasks([domainJoinTask], tc.ctx, { backoff }))[0]?.status, 'ok');
  const kinits = tc.runner.calls.filter((c) => c.file === 'kinit').map((c) => (c.args![0]!.includes('$@') ? 'name check' : 'join account'));
  t.same(kinits, ['name check', 'join account'], 'one kinit each');
  t.notOk(existsSync(path.dirname(w.ldap!.tickets![0]!.ccache)), 'closed after the join');

  // plan's check (nothing applied): no ticket at all.
  const w2: World = { existing: {} };
  const tc2 = await setup(w2);
  const found = await domainJoinTask.check(tc2.ctx);
  t.ok(found.changes.length > 0, 'a join is planned');
  t.same(w2.ldap?.tickets ?? [], [], 'no kinit of the join account for a check (`dsvm-agent plan`)');

  // An apply that fails before the join (visudo refuses the sudoers drop-in) closes it too.
  const w4: World = { existing: {}, visudoFails: 'sudoers.candidate:1:12: syntax error' };
  const tc4 = await setup(w4);
  t.equal((await runTasks([domainJoinTask], tc4.ctx, { backoff }))[0]?.status, 'failed');
  t.ok((w4.ldap?.tickets?.length ?? 0) >= 1, 'the ticket had been asked for');
  t.notOk(
    w4.ldap!.tickets!.some((tk) => existsSync(path.dirname(tk.ccache))),
    'no ticket left after a failed apply',
  );
});
