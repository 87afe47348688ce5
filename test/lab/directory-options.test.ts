/**
 * The directory and network options (issue 19) against the lab's real Samba
 * AD DC, real sssd, adcli, sssctl and PAM, with `bin/dsvm-agent provision`
 * run in a client VM as on a VM:
 *
 * 1. A locked-down network: the DC's ports 53 and 445 are closed to this
 *    client (nftables in the DC's namespace) and the client resolves names
 *    through a forwarder (test/lab/dns-forwarder.mjs in the storage
 *    server's namespace, as Azure DNS would). The join passes, with
 *    preflight warnings naming each port.
 * 2. In that join: domain.idMapping: posix (dana.scully has uidNumber 70001
 *    on the DC: `id` shows it, her workspace folder is owned by it; bob has
 *    no POSIX attributes: his login is refused with a logged reason, and the
 *    PAM session still opens), domain.denyGroups (a member of an allowed
 *    group is refused by sssd and by the agent), domain.sssdOptions (in
 *    sssd.conf; a misspelt one is refused by sssctl before anything is
 *    installed).
 * 3. domain.dnsUpdate: true: sssd registers the VM's name at the DC after the
 *    join; `deprovision --leave-domain` removes it with the computer account.
 */
import t, { type Test } from 'tap';
import {
  clientExec,
  dcExec,
  describeResult,
  filesExec,
  lab,
  labEnv,
  labSkipReason,
  PROJECT_ROOT,
  readLabSecret,
  type ExecResult,
} from './harness.js';

const CLIENT = 'c14';
const IP = '10.77.0.24';
const HOSTNAME = 'dsvm-dirop-0014';
const AGENT = `${PROJECT_ROOT}/bin/dsvm-agent`;
const CONFIG = '/etc/dsvm-agent/config.yaml';
const FORWARDER_PID = '/run/dsvm-lab/dirop-forwarder.pid';
const NFT_TABLE = 'dsvmlab_dirop_block';
const POSIX_GROUP = 'dirop-posix';
const DENY_GROUP = 'dirop-deny';
const DANA_UID = 70001;

const sh = (script: string, opts: { input?: string; timeoutMs?: number } = {}): Promise<ExecResult> =>
  clientExec(CLIENT, ['bash', '-c', `set -euo pipefail\n${script}`], opts);

async function must(t: Test, what: string, p: Promise<ExecResult>): Promise<ExecResult> {
  const r = await p;
  t.equal(r.exitCode, 0, describeResult(what, r));
  return r;
}

/** samba-tool on the DC's own sam.ldb; a failure is thrown with its output unless tolerated. */
async function samba(argv: string[], okToFail = false): Promise<ExecResult> {
  const r = await dcExec(['samba-tool', ...argv]);
  if (r.exitCode !== 0 && !okToFail) throw new Error(describeResult(`samba-tool ${argv.join(' ')}`, r));
  return r;
}

async function removeObjects(): Promise<void> {
  for (const u of ['dana.scully', 'fox.mulder']) await samba(['user', 'delete', u], true);
  for (const g of [POSIX_GROUP, DENY_GROUP]) await samba(['group', 'delete', g], true);
}

/** Users with POSIX attributes in a group with a gidNumber; the deny group has one too (posix mode sees only those). */
async function makeObjects(): Promise<void> {
  await removeObjects();
  await samba(['group', 'add', POSIX_GROUP, '--gid-number=70100', '--nis-domain=contoso']);
  await samba(['group', 'add', DENY_GROUP, '--gid-number=70200', '--nis-domain=contoso']);
  for (const [user, uid, given, surname] of [
    ['dana.scully', DANA_UID, 'Dana', 'Scully'],
    ['fox.mulder', DANA_UID + 1, 'Fox', 'Mulder'],
  ] as const) {
    await samba(['user', 'create', user, '--random-password', `--given-name=${given}`, `--surname=${surname}`]);
    await samba(['user', 'addunixattrs', user, String(uid), '--gid-number=70100', '--unix-home=/home/' + user, '--login-shell=/bin/bash']);
  }
  await samba(['group', 'addmembers', POSIX_GROUP, 'dana.scully,fox.mulder,bob']);
  await samba(['group', 'addmembers', DENY_GROUP, 'fox.mulder']);
}

/** Close the DC's ports 53 (TCP and UDP) and 445 to this client only, as an NSG would (silently). */
const BLOCK = `table inet ${NFT_TABLE} {
  chain input {
    type filter hook input priority 0; policy accept;
    ip saddr ${IP} tcp dport { 53, 445 } drop
    ip saddr ${IP} udp dport 53 drop
  }
}
`;

async function unblock(): Promise<void> {
  await dcExec(['nft', 'delete', 'table', 'inet', NFT_TABLE]);
  await filesExec(['bash', '-c', `[ -f ${FORWARDER_PID} ] && kill "$(cat ${FORWARDER_PID})"; rm -f ${FORWARDER_PID}; true`]);
}

function config(env: ReturnType<typeof labEnv>, domain: string[]): string {
  return [
    'domain:',
    `  name: ${env.DOMAIN}`,
    `  joinUser: ${env.JOIN_USER}`,
    '  joinPassword: { file: /etc/dsvm-agent/join-password }',
    `  computerOu: "${env.JOIN_OU}"`,
    ...domain.map((l) => `  ${l}`),
    // The first NSS answer for a new user comes from the DC: give the local login time for it.
    'workspace: { loginTimeoutMs: 20000 }',
    '',
  ].join('\n');
}

async function writeConfig(text: string): Promise<void> {
  const r = await sh(`mkdir -p /etc/dsvm-agent && umask 077 && cat > ${CONFIG}`, { input: text });
  if (r.exitCode !== 0) throw new Error(describeResult('write config', r));
}

interface ProvisionOut {
  ok: boolean;
  tasks: { id: string; status: string; warnings?: string[]; error?: string; reason?: string; fix?: string }[];
}
async function provision(): Promise<{ r: ExecResult; out: ProvisionOut | undefined }> {
  const r = await clientExec(CLIENT, [AGENT, '--config', CONFIG, 'provision', '--json'], { timeoutMs: 300_000 });
  try {
    return { r, out: JSON.parse(r.stdout) as ProvisionOut };
  } catch {
    return { r, out: undefined };
  }
}

async function keytabName(): Promise<string | undefined> {
  const r = await clientExec(CLIENT, ['klist', '-k', '/etc/krb5.keytab']);
  return /^\s*\d+\s+([^\s/]+)\$@/m.exec(r.stdout)?.[1];
}

/** The A records of NAME as the DC itself answers (asked in its own namespace, not through any cache). */
async function recordAtDc(env: ReturnType<typeof labEnv>, name: string): Promise<string> {
  const r = await dcExec(['dig', '+short', '+time=2', '+tries=1', `@${env.DC_IP}`, 'A', `${name.toLowerCase()}.${env.DOMAIN}`]);
  return r.stdout.trim();
}

async function pamLogin(user: string): Promise<ExecResult> {
  return clientExec(CLIENT, ['pamtester', '-v', 'dsvm-dirop', user, 'open_session', 'close_session']);
}

async function main(): Promise<void> {
  const env = labEnv();
  t.before(async () => {
    await makeObjects();
    const up = await lab(['client-up', CLIENT, IP, HOSTNAME], { timeoutMs: 300_000 });
    if (up.exitCode !== 0) throw new Error(describeResult('client-up', up));
    const pw = await sh('mkdir -p /etc/dsvm-agent && umask 077 && cat > /etc/dsvm-agent/join-password', {
      input: readLabSecret('join-password'),
    });
    if (pw.exitCode !== 0) throw new Error(describeResult('join password', pw));
  });
  t.teardown(async () => {
    await unblock().catch(() => undefined);
    await clientExec(CLIENT, [AGENT, '--config', CONFIG, 'deprovision', '--leave-domain', '--yes'], { timeoutMs: 120_000 }).catch(
      () => undefined,
    );
    await lab(['client-down', CLIENT]).catch(() => undefined);
    await removeObjects().catch(() => undefined);
  });

  let computer = '';

  t.test('DC ports 53 and 445 closed, names through a forwarder: the join passes with a warning per port', async (t) => {
    const fwd = await must(
      t,
      'start the DNS forwarder',
      filesExec([
        'bash',
        '-c',
        `setsid --fork node ${PROJECT_ROOT}/test/lab/dns-forwarder.mjs ${env.FILES_IP} ${env.DC_IP} ${FORWARDER_PID} </dev/null >/dev/null 2>&1
         for i in $(seq 50); do [ -s ${FORWARDER_PID} ] && exit 0; sleep 0.1; done; echo "forwarder did not start" >&2; exit 1`,
      ]),
    );
    if (fwd.exitCode !== 0) return;
    await must(t, 'block 53 and 445 on the DC', dcExec(['nft', '-f', '-'], { input: BLOCK }));
    await must(t, 'the client resolves through the forwarder', sh(`printf 'nameserver ${env.FILES_IP}\\n' > /etc/resolv.conf`));
    const direct = await clientExec(CLIENT, ['dig', '+short', '+time=2', '+tries=1', `@${env.DC_IP}`, 'SRV', `_ldap._tcp.${env.DOMAIN}`]);
    t.not(direct.exitCode, 0, `the DC's own DNS is closed to this client: ${direct.stdout.trim()}`);
    const smb = await clientExec(CLIENT, ['timeout', '3', 'bash', '-c', `: </dev/tcp/${env.DC_IP}/445`]);
    t.not(smb.exitCode, 0, "the DC's SMB is closed to this client");
    const srv = await must(t, 'SRV through the forwarder', clientExec(CLIENT, ['dig', '+short', 'SRV', `_ldap._tcp.${env.DOMAIN}`]));
    t.match(srv.stdout, /dc1\.contoso\.test/);

    await writeConfig(
      config(env, [
        'idMapping: posix',
        `allowGroups: [${POSIX_GROUP}]`,
        `denyGroups: [${DENY_GROUP}]`,
        'dnsUpdate: false',
        'sssdOptions: { ldap_referrals: false, entry_cache_timeout: 600 }',
      ]),
    );
    const { r, out } = await provision();
    t.equal(r.exitCode, 0, describeResult('provision', r));
    const pre = out?.tasks.find((x) => x.id === 'preflight');
    t.equal(pre?.status, 'ok', 'preflight passes');
    const warnings = (pre?.warnings ?? []).join('\n');
    t.match(
      warnings,
      /port 53 on the DC dc1\.contoso\.test \(10\.77\.0\.2\) is not reachable.*domain\.dnsUpdate is off/,
      'a warning for 53',
    );
    t.match(warnings, /port 445 on the DC dc1\.contoso\.test \(10\.77\.0\.2\) is not reachable.*Group Policy/, 'a warning for 445');
    t.equal(out?.tasks.find((x) => x.id === 'domain-join')?.status, 'ok', 'joined');
    computer = (await keytabName()) ?? '';
    t.ok(computer, `joined as ${computer}`);
  });

  t.test('idMapping posix: the uidNumber from AD, her folder owned by it', async (t) => {
    const conf = await must(t, 'sssd.conf', clientExec(CLIENT, ['cat', '/etc/sssd/sssd.conf']));
    t.match(conf.stdout, /^ldap_id_mapping = False$/m);
    const id = await must(t, 'id dana.scully', clientExec(CLIENT, ['id', 'dana.scully']));
    t.match(id.stdout, new RegExp(`^uid=${DANA_UID}\\(dana\\.scully\\) gid=70100\\(${POSIX_GROUP}\\)`), id.stdout.trim());
    await must(
      t,
      'pam service',
      sh(
        `printf '%s\\n' 'auth required pam_sss.so' 'account required pam_sss.so' 'session required pam_permit.so' 'session optional pam_exec.so log=/run/dirop-pam.log ${AGENT} pam-session' > /etc/pam.d/dsvm-dirop`,
      ),
    );
    await must(t, 'dana logs in (PAM session)', pamLogin('dana.scully'));
    const st = await must(t, 'stat her folder', clientExec(CLIENT, ['stat', '-c', '%u %g %a', '/data/workspace/dana.scully/notebooks']));
    t.match(st.stdout.trim(), new RegExp(`^${DANA_UID} `), `owned by uid ${DANA_UID}`);
  });

  t.test('idMapping posix: a user without POSIX attributes gets a logged refusal, the session still opens', async (t) => {
    const bob = await clientExec(CLIENT, ['getent', 'passwd', 'bob']);
    t.equal(bob.exitCode, 2, 'bob (no uidNumber) is not seen in posix mode');
    await sh(': > /run/dirop-pam.log');
    const started = Date.now();
    const r = await pamLogin('bob');
    t.equal(r.exitCode, 0, describeResult('the session opens (pam_exec is optional and the hook exits 0)', r));
    t.ok(Date.now() - started < 20_000, `not held up (${Date.now() - started} ms)`);
    const log = await clientExec(CLIENT, ['cat', '/run/dirop-pam.log']);
    t.match(log.stdout, /refused.*no user "bob".*domain\.idMapping: posix.*uidNumber and gidNumber/, `logged: ${log.stdout.trim()}`);
    const json = await clientExec(CLIENT, [AGENT, '--config', CONFIG, 'login', '--user', 'bob', '--json'], { timeoutMs: 60_000 });
    t.match(JSON.parse(json.stdout), { status: 'refused', reason: 'no-posix-ids' });
    const folder = await clientExec(CLIENT, ['test', '-e', '/data/workspace/bob']);
    t.not(folder.exitCode, 0, 'no folder for bob');
  });

  t.test('denyGroups: a member of an allowed group who is also in a deny group is refused by sssd and the agent', async (t) => {
    const conf = await must(t, 'sssd.conf', clientExec(CLIENT, ['cat', '/etc/sssd/sssd.conf']));
    t.match(conf.stdout, new RegExp(`^simple_deny_groups = ${DENY_GROUP}$`, 'm'));
    const acct = (user: string) => clientExec(CLIENT, ['pamtester', 'dsvm-dirop', user, 'acct_mgmt']);
    t.equal((await acct('dana.scully')).exitCode, 0, 'dana (allowed, not denied) passes the account stack');
    const fox = await acct('fox.mulder');
    t.not(fox.exitCode, 0, 'fox (allowed and denied) is refused by sssd');
    t.match(fox.stderr + fox.stdout, /Permission denied|denied/i);
    const json = await clientExec(CLIENT, [AGENT, '--config', CONFIG, 'login', '--user', 'fox.mulder', '--json'], { timeoutMs: 60_000 });
    t.match(JSON.parse(json.stdout), { status: 'skipped', reason: 'denied' });
    t.not((await clientExec(CLIENT, ['test', '-e', '/data/workspace/fox.mulder'])).exitCode, 0, 'no folder for fox');
  });

  t.test('sssdOptions: written, and a misspelt option is refused by sssctl before anything changes', async (t) => {
    const conf = await must(t, 'sssd.conf', clientExec(CLIENT, ['cat', '/etc/sssd/sssd.conf']));
    t.match(conf.stdout, /^ldap_referrals = False$/m);
    t.match(conf.stdout, /^entry_cache_timeout = 600$/m);
    const before = (await clientExec(CLIENT, ['sha256sum', '/etc/sssd/sssd.conf'])).stdout;
    const text = (await clientExec(CLIENT, ['cat', CONFIG])).stdout;
    await writeConfig(text.replace('ldap_referrals: false', 'ldap_refferals: false'));
    const { r, out } = await provision();
    t.not(r.exitCode, 0, 'provision fails');
    const join = out?.tasks.find((x) => x.id === 'domain-join');
    t.match(join?.error, /sssctl config-check.*Attribute 'ldap_refferals' is not allowed/, "sssd's own words");
    t.match(join?.fix, /domain\.sssdOptions/);
    t.equal((await clientExec(CLIENT, ['sha256sum', '/etc/sssd/sssd.conf'])).stdout, before, 'sssd.conf unchanged');
    await writeConfig(text.replace('ldap_referrals: false', 'ldap_id_mapping: true'));
    const check = await clientExec(CLIENT, [AGENT, 'config', 'check', CONFIG]);
    t.equal(check.exitCode, 2, 'config check: exit 2');
    t.match(check.stdout + check.stderr, /domain\.sssdOptions\.ldap_id_mapping: is set by the agent itself.*domain\.idMapping/);
    await writeConfig(text);
  });

  t.test('leaving with dnsUpdate off: no DNS step, the account goes', async (t) => {
    const r = await must(
      t,
      'deprovision --leave-domain',
      clientExec(CLIENT, [AGENT, '--config', CONFIG, 'deprovision', '--leave-domain', '--yes'], { timeoutMs: 120_000 }),
    );
    t.notMatch(r.stdout, /DNS record/, 'no DNS record step');
    t.match(r.stdout, /computer account/);
    await unblock();
    await must(t, 'the client resolves through the DC again', sh(`printf 'nameserver ${env.DC_IP}\\n' > /etc/resolv.conf`));
  });

  t.test('dnsUpdate true: the record appears after the join and is gone after leaving', async (t) => {
    // sssd (2.8+) makes its first update a random 0-300 s after start
    // (dyndns_refresh_interval_offset), so that a pool's VMs booting together
    // do not all update at once; one VM need not wait: an sssdOptions entry.
    await writeConfig(
      config(env, ['dnsUpdate: true', `allowGroups: [${env.USERS_GROUP}]`, 'sssdOptions: { dyndns_refresh_interval_offset: 0 }']),
    );
    const { r } = await provision();
    t.equal(r.exitCode, 0, describeResult('provision', r));
    computer = (await keytabName()) ?? '';
    t.ok(computer, `joined as ${computer}`);
    t.match((await clientExec(CLIENT, ['cat', '/etc/sssd/sssd.conf'])).stdout, /^dyndns_update = True$/m);
    let record = '';
    for (let i = 0; i < 90 && record === ''; i++) {
      record = await recordAtDc(env, computer);
      if (record === '') await new Promise((res) => setTimeout(res, 1000));
    }
    t.equal(record, IP, `sssd registered ${computer.toLowerCase()}.${env.DOMAIN} -> ${IP} at the DC`);
    const d = await must(
      t,
      'deprovision --leave-domain',
      clientExec(CLIENT, [AGENT, '--config', CONFIG, 'deprovision', '--leave-domain', '--yes'], { timeoutMs: 120_000 }),
    );
    t.match(d.stdout, /DNS record/, 'the DNS record step ran');
    t.equal(await recordAtDc(env, computer), '', 'the record is gone at the DC');
    const obj = await dcExec(['samba-tool', 'computer', 'show', computer]);
    t.not(obj.exitCode, 0, 'the computer account is gone');
  });
}

const skip = labSkipReason();
if (skip) {
  t.plan(0, skip);
} else {
  await main();
}
