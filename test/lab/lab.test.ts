/**
 * Proves the lab itself: the DC answers as AD does, a real join works with
 * the join account's delegated rights, sssd resolves AD users, the storage
 * server takes the account key and nothing else, and each Azure fake answers
 * in its wire format. Every later lab test builds on these facts.
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { PROJECT_ROOT, clientExec, fakesUrls, lab, labEnv, labSkipReason, readLabSecret, type ExecResult } from './harness.js';
import { labJoin, startLabSssd, stopLabSssd } from './sssd.js';

/** The subtest type, as tap hands it to a callback. */
type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

const skip = labSkipReason();
if (skip) {
  t.plan(0, skip);
} else {
  const env = labEnv();
  const client = 'c1';

  const ok = (t: TapTest, what: string, r: ExecResult): void => {
    // The command's output shows only when the assertion fails.
    t.equal(r.exitCode, 0, what, { stdout: r.stdout, stderr: r.stderr, timedOut: r.timedOut });
  };

  const join = (computer: string, keytab: string, password: string): Promise<ExecResult> => labJoin(client, computer, { keytab, password });

  const deleteComputer = (computerName: string): Promise<ExecResult> =>
    clientExec(
      client,
      ['adcli', 'delete-computer', `--domain=${env.DOMAIN}`, `--login-user=${env.JOIN_USER}`, '--stdin-password', computerName],
      { input: `${readLabSecret('join-password')}\n` },
    );

  t.test('the client VM looks like a VM of the pool', async (t) => {
    const r = await clientExec(client, ['sh', '-c', 'hostname; cat /etc/resolv.conf; test -d /data/workspace && echo data-ok']);
    ok(t, 'inspect client', r);
    t.match(r.stdout, /^dsvm-lab-client-0001\n/, 'hostname longer than 15 characters');
    t.match(r.stdout, new RegExp(`nameserver ${env.DC_IP.replaceAll('.', '\\.')}`), 'resolver is the DC');
    t.match(r.stdout, /data-ok/, '/data/workspace exists');
  });

  t.test('DNS SRV records of the domain resolve from the client VM', async (t) => {
    for (const name of [`_ldap._tcp.${env.DOMAIN}`, `_kerberos._tcp.${env.DOMAIN}`]) {
      const r = await clientExec(client, ['dig', '+short', '+time=2', '+tries=2', 'SRV', name]);
      ok(t, `dig SRV ${name}`, r);
      t.match(r.stdout, new RegExp(`\\d+ \\d+ \\d+ dc1\\.${env.DOMAIN.replaceAll('.', '\\.')}\\.`), `${name} names dc1`);
    }
    const a = await clientExec(client, ['dig', '+short', env.FILES_HOST]);
    t.equal(a.stdout.trim(), env.FILES_IP, `${env.FILES_HOST} points at the storage server`);
  });

  t.test('adcli joins with the join account and the OU delegation', async (t) => {
    const name = `LABJOIN${process.pid % 10000}`;
    const keytab = `/tmp/${name}.keytab`;
    const joined = await join(name, keytab, readLabSecret('join-password'));
    ok(t, 'adcli join', joined);
    const test = await clientExec(client, ['adcli', 'testjoin', `--domain=${env.DOMAIN}`, `--host-keytab=${keytab}`]);
    ok(t, 'adcli testjoin', test);
    const klist = await clientExec(client, ['klist', '-k', keytab]);
    t.match(klist.stdout, new RegExp(`${name}\\$@${env.REALM}`), 'keytab holds the machine principal');
    const wrong = await join(`${name}X`, `/tmp/${name}X.keytab`, 'not-the-password');
    t.not(wrong.exitCode, 0, 'a wrong join password is refused');
    ok(t, 'adcli delete-computer', await deleteComputer(name));
    await clientExec(client, ['rm', '-f', keytab]);
  });

  t.test('an AD user resolves through sssd in the client VM', async (t) => {
    const name = 'LABSSSD';
    const joined = await join(name, '/etc/krb5.keytab', readLabSecret('join-password'));
    ok(t, 'adcli join for sssd', joined);
    ok(t, 'sssd setup', await startLabSssd(client, `${name.toLowerCase()}.${env.DOMAIN}`));
    try {
      const passwd = await clientExec(client, ['getent', 'passwd', 'alice']);
      ok(t, 'getent passwd alice', passwd);
      t.match(passwd.stdout, /^alice:\*:\d+:\d+:/, 'alice has a passwd entry');
      const id = await clientExec(client, ['id', 'alice']);
      ok(t, 'id alice', id);
      t.match(id.stdout, /dsvm-users/, 'alice is in dsvm-users');
      const mallory = await clientExec(client, ['id', 'mallory']);
      t.notMatch(mallory.stdout, /dsvm-users/, 'mallory is not in dsvm-users');
    } finally {
      ok(t, 'sssd teardown', await stopLabSssd(client));
      ok(t, 'delete sssd computer', await deleteComputer(name));
    }
  });

  t.test('the share takes the storage key and refuses anything else', async (t) => {
    const smb = (password: string): Promise<ExecResult> =>
      clientExec(client, ['bash', '-c', SMB_WITH_AUTHFILE, 'smb', env.STORAGE_ACCOUNT, `//${env.FILES_HOST}/${env.SHARE_NAME}`, 'ls'], {
        input: `${password}\n`,
      });
    const good = await smb(readLabSecret('storage-key'));
    ok(t, 'smbclient with the key', good);
    const bad = await smb(Buffer.alloc(64, 7).toString('base64'));
    t.not(bad.exitCode, 0, 'a wrong key is refused');
    t.match(bad.stdout + bad.stderr, /NT_STATUS_LOGON_FAILURE/, 'as a logon failure');
  });

  t.test('files-stop, files-freeze and their undo', async (t) => {
    const probe = (): Promise<ExecResult> => clientExec(client, ['timeout', '3', 'bash', '-c', `: </dev/tcp/${env.FILES_IP}/445`]);
    ok(t, 'storage server answers', await probe());
    ok(t, 'files-stop', await lab(['files-stop']));
    t.not((await probe()).exitCode, 0, 'stopped: connection refused');
    ok(t, 'files-start', await lab(['files-start']));
    ok(t, 'storage server answers again', await probe());
    ok(t, 'files-freeze', await lab(['files-freeze']));
    const frozen = await clientExec(
      client,
      ['bash', '-c', SMB_WITH_AUTHFILE, 'smb', env.STORAGE_ACCOUNT, `//${env.FILES_HOST}/${env.SHARE_NAME}`, 'ls'],
      {
        input: `${readLabSecret('storage-key')}\n`,
        timeoutMs: 4000,
      },
    );
    t.ok(frozen.timedOut, 'frozen: an SMB client hangs');
    ok(t, 'files-thaw', await lab(['files-thaw']));
    ok(t, 'storage server answers after thaw', await probe());
  });

  const noFakes = !existsSync(path.join(PROJECT_ROOT, 'test/fakes/serve.ts')) || !env.FAKES_URLS_C1;
  t.test(
    'each Azure fake answers in its wire format',
    { skip: noFakes && 'test/fakes/serve.ts is missing: the lab runs no fakes' },
    async (t) => {
      const input = JSON.stringify({
        urls: fakesUrls(client),
        subscriptionId: env.SUBSCRIPTION_ID,
        resourceGroup: env.RESOURCE_GROUP,
        account: env.STORAGE_ACCOUNT,
        share: env.SHARE_NAME,
        joinPassword: readLabSecret('join-password'),
        storageKey: readLabSecret('storage-key'),
      });
      const r = await clientExec(client, ['node', 'test/lab/fakes-probe.mjs'], { input });
      ok(t, 'fakes probe', r);
      const facts = JSON.parse(r.stdout) as {
        imds: { status: number; vmId: string; name: string; vmScaleSetName: string; computerName: string; instanceId: string };
        imdsWithoutMetadataHeader: number;
        token: { status: number; type: string };
        keyVault: { status: number; valueMatches: boolean };
        arm: { status: number; keyNames: string[]; key1Matches: boolean };
        files: { createdDirectory: string };
        filesWrongKeyStatus: number;
        scheduledEvents: Record<string, unknown>;
        handles: { listed: unknown[]; closed: number; left: number };
      };
      t.equal(facts.imds.status, 200, 'IMDS instance metadata');
      t.equal(facts.imds.vmId, env.CLIENT_VMID_C1, 'IMDS vmId is the lab client');
      t.equal(facts.imds.vmScaleSetName, env.VMSS_NAME, 'IMDS vmScaleSetName');
      t.equal(facts.imds.computerName, env.CLIENT_HOSTNAME_C1, 'IMDS computerName');
      t.equal(facts.imds.instanceId, env.CLIENT_INSTANCE_C1, 'IMDS resourceId ends in the scale-set instance id');
      t.equal(facts.imds.name, `${env.VMSS_NAME}_${env.CLIENT_INSTANCE_C1}`, 'IMDS name is <vmss>_<instance>');
      t.equal(facts.imdsWithoutMetadataHeader, 400, 'IMDS wants the Metadata header');
      t.same(facts.token, { status: 200, type: 'Bearer' }, 'managed identity token');
      t.same(facts.keyVault, { status: 200, valueMatches: true, hasId: true }, 'Key Vault holds the join password');
      t.equal(facts.arm.status, 200, 'ARM listKeys');
      t.ok(facts.arm.key1Matches, 'listKeys key1 is the storage key');
      t.same(facts.arm.keyNames, ['key1', 'key2'], 'listKeys names key1 and key2');
      t.match(
        facts.scheduledEvents,
        {
          status: 200,
          incarnationIsNumber: true,
          event: {
            EventId: /^probe-\d+$/,
            EventType: 'Terminate',
            EventStatus: 'Scheduled',
            Resources: [`${env.VMSS_NAME}_${env.CLIENT_INSTANCE_C1}`],
          },
          approveStatus: 200,
          afterApprove: 'Started',
          incarnationBumped: true,
        },
        'scheduled events: a Terminate for this VM, approved through StartRequests',
      );
      t.same(
        facts.handles,
        {
          listed: [{ path: facts.files.createdDirectory, clientIp: '10.77.0.10:49152', clientName: 'probe', hasId: true }],
          closed: 1,
          left: 0,
        },
        'Files REST lists the open handle and force-closes it',
      );
      const dir = facts.files.createdDirectory;
      t.ok(readdirSync(env.SHARE_DIR).includes(dir), 'Files REST directory lands in the SMB share folder');
      t.equal(facts.filesWrongKeyStatus, 403, 'Files REST refuses a wrong key');
      await clientExec(client, ['rmdir', path.join(env.SHARE_DIR, dir)]);
    },
  );
}

/** Writes the key (stdin) to a 0600 auth file: smbclient never sees it in argv. */
const SMB_WITH_AUTHFILE = `set -euo pipefail
user=$1 unc=$2 cmd=$3
auth=$(mktemp)
trap 'rm -f "$auth"' EXIT
IFS= read -r key
printf 'username = %s\\npassword = %s\\n' "$user" "$key" >"$auth"
smbclient "$unc" -A "$auth" -m SMB3 -c "$cmd"
`;
