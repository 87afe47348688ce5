/**
 * Domain join against the lab's real Samba AD DC, real adcli, sssd and PAM,
 * with the agent run as it runs on a VM: `bin/dsvm-agent provision` inside
 * the client VM, its join password read from the Key Vault fake through the
 * managed-identity fake.
 */
import t, { type Test } from 'tap';
import {
  clientExec,
  dcExec,
  describeResult,
  fakesUrls,
  lab,
  labEnv,
  labSkipReason,
  PROJECT_ROOT,
  readLabSecret,
  type ExecResult,
} from './harness.js';
import { alternateComputerName, primaryComputerName } from '../../src/tasks/domain-join/computer-name.js';

const AGENT = `${PROJECT_ROOT}/bin/dsvm-agent`;
const CONFIG = '/etc/dsvm-agent/config.yaml';
const MANAGED = [
  '/etc/sssd/sssd.conf',
  '/etc/krb5.conf',
  '/etc/nsswitch.conf',
  '/etc/realmd.conf',
  '/etc/sudoers.d/dsvm-agent',
  '/etc/ssh/sshd_config.d/10-dsvm-agent.conf',
  '/etc/krb5.keytab',
  '/usr/share/pam-configs/dsvm-agent-mkhomedir',
  '/etc/pam.d/common-session',
];

/**
 * The join password comes from a root-only file in the client. (Key Vault
 * through the fakes is what production uses; the SDK's challenge-resource
 * check refuses a loopback vault URL unless the client disables it.)
 */
function configYaml(client: string, secret: 'file' | 'wrong-file'): string {
  const env = labEnv();
  const urls = fakesUrls(client);
  const joinPassword = `{ file: /etc/dsvm-agent/${secret === 'file' ? 'join-password' : 'wrong-join-password'} }`;
  return [
    'azure:',
    `  imdsEndpoint: "${urls.imds}"`,
    'domain:',
    `  name: ${env.DOMAIN}`,
    `  joinUser: ${env.JOIN_USER}`,
    `  joinPassword: ${joinPassword}`,
    `  computerOu: "${env.JOIN_OU}"`,
    `  allowGroups: [${env.USERS_GROUP}]`,
    `  sudoGroups: [${env.ADMINS_GROUP}]`,
    '',
  ].join('\n');
}

async function must(t: Test, what: string, p: Promise<ExecResult>): Promise<ExecResult> {
  const r = await p;
  t.equal(r.exitCode, 0, describeResult(what, r));
  return r;
}

const sh = (client: string, script: string, opts: { input?: string; timeoutMs?: number } = {}): Promise<ExecResult> =>
  clientExec(client, ['bash', '-c', `set -euo pipefail\n${script}`], opts);

async function writeConfig(client: string, secret: 'file' | 'wrong-file'): Promise<void> {
  const r = await sh(client, `mkdir -p /etc/dsvm-agent && umask 077 && cat > ${CONFIG}`, { input: configYaml(client, secret) });
  if (r.exitCode !== 0) throw new Error(describeResult('write config', r));
  const p = await sh(client, 'umask 077 && cat > /etc/dsvm-agent/join-password', { input: readLabSecret('join-password') });
  if (p.exitCode !== 0) throw new Error(describeResult('write join password', p));
}

const provision = (client: string, timeoutMs = 240_000): Promise<ExecResult> =>
  clientExec(client, [AGENT, '--config', CONFIG, 'provision', '--json'], { timeoutMs });

/** sha256 of every managed file ("-" when absent). */
async function fingerprint(client: string): Promise<string> {
  const r = await sh(client, `for f in ${MANAGED.join(' ')}; do if [ -e "$f" ]; then sha256sum "$f"; else echo "- $f"; fi; done`);
  return r.stdout;
}

/** The computer object as the DC sees it (local sam.ldb on the DC). */
async function computerObject(name: string): Promise<Record<string, string>> {
  const r = await dcExec([
    'samba-tool',
    'computer',
    'show',
    name,
    '--attributes=distinguishedName,description,dNSHostName,whenChanged,pwdLastSet,operatingSystem,operatingSystemVersion',
  ]);
  const out: Record<string, string> = {};
  if (r.exitCode !== 0) return out;
  for (const line of r.stdout.split('\n')) {
    const m = /^(\w+): (.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

/** A client VM outside any scale set (IMDS has no VMSS name), with the agent's config written. */
async function plainClientUp(t: Test, client: string, ip: string, host: string): Promise<void> {
  const up = await lab(['client-up', client, ip, host], { timeoutMs: 300_000 });
  t.equal(up.exitCode, 0, describeResult(`client-up ${client}`, up));
  const seed = await clientExec(client, [
    'node',
    '-e',
    `fetch(process.argv[1] + '/seed', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ vm: { compute: { name: '${host}', vmScaleSetName: '' } } }) }).then((r) => process.exit(r.ok ? 0 : 1))`,
    fakesUrls(client).control,
  ]);
  t.equal(seed.exitCode, 0, describeResult(`seed IMDS of ${client}`, seed));
  await writeConfig(client, 'file');
}

async function keytabName(client: string): Promise<string | undefined> {
  const r = await clientExec(client, ['klist', '-k', '/etc/krb5.keytab']);
  return /^\s*\d+\s+([^\s/]+)\$@/m.exec(r.stdout)?.[1];
}

async function main(): Promise<void> {
  const env = labEnv();
  const C1 = 'c1';
  const vmId = env.CLIENT_VMID_C1!.toLowerCase();
  // The lab's IMDS fake presents each client as scale-set instance <VMSS>_<n>.
  const expected = primaryComputerName({
    configured: 'auto',
    vmScaleSetName: env.VMSS_NAME,
    vmName: `${env.VMSS_NAME}_${env.CLIENT_INSTANCE_C1!}`,
    hostname: env.CLIENT_HOSTNAME_C1!,
  }).name;

  t.test('a wrong join password fails in one attempt, clearly, leaving no join config', async (t) => {
    await must(
      t,
      'wrong secret',
      sh(C1, 'mkdir -p /etc/dsvm-agent && umask 077 && printf %s "Not-The-Password-1" > /etc/dsvm-agent/wrong-join-password', {}),
    );
    await writeConfig(C1, 'wrong-file');
    const before = await fingerprint(C1);
    const r = await provision(C1);
    t.not(r.exitCode, 0, 'provision fails');
    const out = JSON.parse(r.stdout) as { tasks: { id: string; status: string; attempts?: number; error?: string; fix?: string }[] };
    const join = out.tasks.find((x) => x.id === 'domain-join');
    t.equal(join?.status, 'failed');
    t.equal(join?.attempts, 1, 'not retried');
    // adcli's words (Preauthentication failed) or kinit's when the name is claimed over LDAP first.
    t.match(join?.error, /Preauthentication failed|Password incorrect/, "the DC's own words");
    t.match(join?.fix, /joinUser/, 'a fix naming the setting');
    t.equal(await fingerprint(C1), before, 'no file changed, no keytab');
    await sh(C1, 'rm -f /etc/dsvm-agent/wrong-join-password');
  });

  t.test('the DC comes up 30 s after the agent: it retries and joins', async (t) => {
    await writeConfig(C1, 'file');
    const stop = await lab(['dc-stop'], { timeoutMs: 60_000 });
    t.equal(stop.exitCode, 0, describeResult('dc-stop', stop));
    const started = Date.now();
    const run = provision(C1, 300_000);
    await new Promise((r) => setTimeout(r, 30_000));
    const start = await lab(['dc-start'], { timeoutMs: 90_000 });
    t.equal(start.exitCode, 0, describeResult('dc-start', start));
    const r = await run;
    t.equal(r.exitCode, 0, describeResult('provision', r));
    const out = JSON.parse(r.stdout) as { tasks: { id: string; status: string; attempts?: number }[] };
    const pre = out.tasks.find((x) => x.id === 'preflight');
    t.ok((pre?.attempts ?? 0) > 1, `preflight retried (${pre?.attempts} attempts)`);
    t.equal(out.tasks.find((x) => x.id === 'domain-join')?.status, 'ok');
    t.ok(Date.now() - started >= 30_000, 'finished after the DC came back');
  });

  t.test('the computer object: name, OU, stamp', async (t) => {
    t.equal(await keytabName(C1), expected, `keytab holds ${expected}$`);
    t.ok(expected.length <= 15, `scale-set instance ${env.VMSS_NAME}_${env.CLIENT_INSTANCE_C1} → ${expected}`);
    const obj = await computerObject(expected);
    t.equal(obj.distinguishedName, `CN=${expected},${env.JOIN_OU}`, 'in the configured OU');
    t.equal(obj.description, `dsvm-agent vmId=${vmId}`, "stamped with this VM's id");
    t.equal(obj.dNSHostName, `${expected.toLowerCase()}.${env.DOMAIN}`);
    // The client VM shares this machine's /etc/os-release (NAME, VERSION_ID).
    const osRelease = await clientExec(C1, ['sh', '-c', '. /etc/os-release && printf "%s\\n%s\\n" "$NAME" "$VERSION_ID"']);
    const [osName, osVersion] = osRelease.stdout.trim().split('\n');
    t.ok(osName && osVersion, describeResult('read /etc/os-release', osRelease));
    t.equal(obj.operatingSystem, osName, 'operatingSystem from os-release');
    t.equal(obj.operatingSystemVersion, osVersion, 'operatingSystemVersion from os-release');
  });

  t.test("adcli 0.9.0's fallback, for real: the vmId stamp and the name check over LDAP at the DC", async (t) => {
    // The lab's adcli is 0.9.1; 0.9.0's path is what adcli's help decides in
    // production, so here its functions run directly, inside the client, with
    // the agent's runner: a join without --description (all 0.9.0 can do),
    // then the stamp and the look-up, checked on the DC itself.
    const name = 'FALLBK090';
    const stamp = `dsvm-agent vmId=${vmId}`;
    const password = readLabSecret('join-password');
    const driver = (op: string, ...args: string[]): Promise<ExecResult> =>
      clientExec(
        C1,
        [
          `${PROJECT_ROOT}/node_modules/.bin/tsx`,
          `${PROJECT_ROOT}/test/lab/adcli-compat-driver.ts`,
          op,
          env.REALM,
          env.DC_HOSTNAME,
          env.JOIN_USER,
          name,
          ...args,
        ],
        { input: password, timeoutMs: 120_000 },
      );
    const adcli = (args: string[]): Promise<ExecResult> =>
      clientExec(C1, ['adcli', ...args, `--domain=${env.DOMAIN}`, `--login-user=${env.JOIN_USER}`, '--stdin-password'], {
        input: password,
      });
    await must(
      t,
      'adcli join without --description',
      adcli([
        'join',
        `--computer-name=${name}`,
        `--host-fqdn=${name.toLowerCase()}.${env.DOMAIN}`,
        `--domain-ou=${env.JOIN_OU}`,
        '--host-keytab=/tmp/fallbk090.keytab',
      ]),
    );
    try {
      t.equal((await computerObject(name)).description, undefined, 'joined without a description');
      const stamped = await must(t, 'stamp over LDAP', driver('stamp', stamp));
      t.notOk((stamped.stdout + stamped.stderr).includes(password), 'the password in no output');
      t.equal((await computerObject(name)).description, stamp, 'the DC has the stamp');
      const found = JSON.parse((await must(t, 'look-up over LDAP', driver('lookup'))).stdout) as {
        existing: { description?: string; pwdLastSet?: number };
      };
      t.equal(found.existing.description, stamp, 'the look-up reads it back');
      t.ok((found.existing.pwdLastSet ?? 0) > Date.parse('2020-01-01'), 'and the password age the name rule needs');
      const tmp = await clientExec(C1, ['sh', '-c', 'ls -d /tmp/dsvm-agent-ldap-* 2>/dev/null || true']);
      t.equal(tmp.stdout.trim(), '', 'no ticket cache left behind');
    } finally {
      await adcli(['delete-computer', name]);
      await clientExec(C1, ['rm', '-f', '/tmp/fallbk090.keytab']);
    }
  });

  t.test('provision again changes nothing', async (t) => {
    const files = await fingerprint(C1);
    const obj = await computerObject(expected);
    const r = await must(t, 'provision', provision(C1));
    const out = JSON.parse(r.stdout) as { tasks: { id: string; status: string; changed?: boolean }[] };
    t.equal(out.tasks.find((x) => x.id === 'domain-join')?.changed, false, 'domain-join: already in place');
    t.equal(await fingerprint(C1), files, 'files byte-identical');
    t.same(await computerObject(expected), obj, 'object unchanged');
    const plan = await must(t, 'plan', clientExec(C1, [AGENT, '--config', CONFIG, 'plan']));
    t.notMatch(plan.stdout, /join CONTOSO/, 'plan shows no join');
  });

  t.test('users, groups, PAM access and sudo', async (t) => {
    const id = await must(t, 'id alice', clientExec(C1, ['id', 'alice']));
    t.match(id.stdout, /dsvm-users/, 'alice is in dsvm-users');
    const jd = await must(t, 'id Jean.Dupont', clientExec(C1, ['id', 'Jean.Dupont']));
    t.match(jd.stdout, /jean\.dupont/i);
    await must(t, 'pam service', sh(C1, 'printf "auth required pam_sss.so\\naccount required pam_sss.so\\n" > /etc/pam.d/dsvm-join-test'));
    const alice = await clientExec(C1, ['pamtester', 'dsvm-join-test', 'alice', 'authenticate', 'acct_mgmt'], {
      input: readLabSecret('passwords/alice') + '\n',
    });
    t.equal(alice.exitCode, 0, describeResult('alice authenticate + account', alice));
    const mallory = await clientExec(C1, ['pamtester', 'dsvm-join-test', 'mallory', 'acct_mgmt']);
    t.not(mallory.exitCode, 0, 'mallory (in no allowed group) is denied');
    t.match(mallory.stderr + mallory.stdout, /Permission denied|denied/i);
    const sudo = await must(t, 'sudo -l -U dsvmadmin', clientExec(C1, ['sudo', '-l', '-U', 'dsvmadmin']));
    t.match(sudo.stdout, /\(ALL : ALL\) ALL/, 'dsvmadmin may run anything');
    const aliceSudo = await clientExec(C1, ['sudo', '-l', '-U', 'alice']);
    t.match(aliceSudo.stdout + aliceSudo.stderr, /not allowed/, 'alice has no sudo');
    await sh(C1, 'rm -f /etc/pam.d/dsvm-join-test');
  });

  t.test('a 22-character hostname, twice: valid, unique names', async (t) => {
    const host = 'dsvm-datascience-gpu01';
    t.equal(host.length, 22);
    const names: string[] = [];
    t.teardown(async () => {
      for (const client of ['c3', 'c2']) await lab(['client-down', client], { timeoutMs: 60_000 });
    });
    for (const [client, ip] of [
      ['c2', '10.77.0.11'],
      ['c3', '10.77.0.12'],
    ] as const) {
      // Not a scale-set VM here: the name comes from the 22-character host name.
      await plainClientUp(t, client, ip, host);
      await must(t, `provision ${client}`, provision(client));
      const name = await keytabName(client);
      t.ok(name && name.length <= 15 && /^[A-Z0-9][A-Z0-9-]*$/.test(name), `${client}: valid name ${name}`);
      const obj = await computerObject(name ?? '?');
      t.equal(
        obj.description,
        `dsvm-agent vmId=${labEnv()[`CLIENT_VMID_${client.toUpperCase()}`]!.toLowerCase()}`,
        `${client}: stamped with its own vmId`,
      );
      names.push(name ?? '');
    }
    t.not(names[0], names[1], `same hostname, different computer names (${names.join(', ')})`);
    const primary = primaryComputerName({ configured: 'auto', hostname: host }).name;
    t.equal(names[0], primary, 'the first takes the derived name');
    t.equal(
      names[1],
      alternateComputerName(primary, labEnv().CLIENT_VMID_C3!, 1),
      'the second finds it held by a live VM and takes its first alternate',
    );
    for (const client of ['c3', 'c2'])
      await must(t, `deprovision ${client}`, clientExec(client, [AGENT, '--config', CONFIG, 'deprovision', '--leave-domain', '--yes']));
    for (const n of names) t.same(await computerObject(n), {}, `${n} deleted from AD by --leave-domain`);
  });

  t.test('a disabled object held by another live VM: its name is not taken', async (t) => {
    // The KDC answers "no such account" only for names no account has; a
    // disabled one still answers, so the LDAP look-up sees the stamp.
    const host = 'dsvm-disab-01';
    const primary = primaryComputerName({ configured: 'auto', hostname: host }).name;
    const otherVm = '7f3c2a10-5b6e-4d8f-9a01-c2e4b6d8f0a2';
    t.teardown(async () => {
      await dcExec(['samba-tool', 'computer', 'delete', primary]);
      await lab(['client-down', 'c2'], { timeoutMs: 60_000 });
    });
    const made = await dcExec([
      'samba-tool',
      'computer',
      'create',
      primary,
      `--computerou=${env.JOIN_OU.replace(/,DC=.*$/i, '')}`,
      `--description=dsvm-agent vmId=${otherVm}`,
    ]);
    t.equal(made.exitCode, 0, describeResult('samba-tool computer create', made));
    const off = await dcExec(['samba-tool', 'user', 'disable', `${primary}$`]);
    t.equal(off.exitCode, 0, describeResult('samba-tool user disable', off));
    const before = await computerObject(primary);
    await plainClientUp(t, 'c2', '10.77.0.11', host);
    await must(t, 'provision c2', provision('c2'));
    const name = await keytabName('c2');
    t.equal(
      name,
      alternateComputerName(primary, labEnv().CLIENT_VMID_C2!, 1),
      `joined under its first alternate (${name}), not ${primary}`,
    );
    t.same(await computerObject(primary), before, 'the disabled object is untouched');
    await must(t, 'deprovision c2', clientExec('c2', [AGENT, '--config', CONFIG, 'deprovision', '--leave-domain', '--yes']));
  });

  t.test('deprovision --leave-domain removes every trace', async (t) => {
    const r = await must(t, 'deprovision', clientExec(C1, [AGENT, '--config', CONFIG, 'deprovision', '--leave-domain', '--yes']));
    t.match(r.stdout, /computer account/);
    t.same(await computerObject(expected), {}, 'computer object deleted');
    const left = await sh(
      C1,
      'ls /etc/sssd/sssd.conf /etc/krb5.keytab /etc/sudoers.d/dsvm-agent /etc/ssh/sshd_config.d/10-dsvm-agent.conf 2>/dev/null || true; grep -c "dsvm-agent" /etc/krb5.conf /etc/realmd.conf 2>/dev/null || true',
    );
    t.notMatch(left.stdout, /sssd\.conf|krb5\.keytab|sudoers|10-dsvm-agent/, 'agent files gone');
    t.notMatch(left.stdout, /:[1-9]/, 'no marked block left');

    // Image capture may run it twice (by hand, then from Packer): the second
    // run finds nothing and changes nothing.
    const tree = "find /etc /var/lib/dsvm-agent -xdev -printf '%p %m %s %T@\\n' 2>/dev/null | sort | md5sum";
    const before = (await sh(C1, tree)).stdout;
    const again = await must(t, 'deprovision again', clientExec(C1, [AGENT, '--config', CONFIG, 'deprovision', '--yes']));
    t.notMatch(again.stdout, /^- /m, 'second run removes nothing');
    t.match(again.stdout, /nothing was left to remove/);
    t.equal((await sh(C1, tree)).stdout, before, 'second run: /etc and the state trees unchanged');

    // And the captured image's first boot runs every task again.
    const plan = await must(t, 'plan after deprovision', clientExec(C1, [AGENT, '--config', CONFIG, 'plan', '--json']));
    const entries = (JSON.parse(plan.stdout) as { tasks: Array<{ id: string; status: string; pending?: boolean }> }).tasks;
    const running = entries.filter((e) => e.status !== 'skipped');
    t.ok(running.length >= 2, `tasks that run: ${running.map((e) => e.id).join(', ')}`);
    t.ok(
      running.every((e) => e.pending === true),
      `every first-boot task pending: ${JSON.stringify(running.map((e) => [e.id, e.status, e.pending]))}`,
    );
  });
}

const skip = labSkipReason();
if (skip) {
  t.plan(0, skip);
} else {
  await main();
}
