/**
 * Captures what the real tools print in the lab into test/fixtures/lab/, for
 * unit tests whose fake runner replays them. Run it against an up lab:
 *
 *   test/lab/lab up && npx tsx test/lab/capture-fixtures.ts; test/lab/lab down
 *
 * `capture-fixtures.ts kdc-probe` captures only the KDC look-up's answers.
 *
 * Each fixture is JSON: { description, argv, exitCode, stdout, stderr }. The
 * argv never holds a secret (passwords go on stdin); the outputs hold none
 * either (adcli does not print passwords, klist -k prints no keys).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT, clientExec, dcExec, lab, labEnv, readLabSecret, type ExecOptions, type ExecResult } from './harness.js';
import { startLabSssd, stopLabSssd } from './sssd.js';
import { probeArgv, probeKrb5Conf } from '../../src/tasks/domain-join/kdc-probe.js';

const OUT = path.join(PROJECT_ROOT, 'test/fixtures/lab');
const CLIENT = 'c1';
const env = labEnv();
const COMPUTER = 'DSVM-FIX-0001';
const KEYTAB = '/tmp/dsvm-fix.keytab';

async function capture(name: string, description: string, argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const r = await clientExec(CLIENT, argv, opts);
  const fixture = { description, argv, ...(opts.env ? { env: opts.env } : {}), exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr };
  writeFileSync(path.join(OUT, `${name}.json`), `${JSON.stringify(fixture, null, 2)}\n`);
  process.stdout.write(`${name}.json: exit ${r.exitCode}\n`);
  return r;
}

const joinArgv = (computer: string, keytab: string, ou = env.JOIN_OU): string[] => [
  'adcli',
  'join',
  '--verbose',
  `--domain=${env.DOMAIN}`,
  `--login-user=${env.JOIN_USER}`,
  '--stdin-password',
  `--computer-name=${computer}`,
  `--host-fqdn=${computer.toLowerCase()}.${env.DOMAIN}`,
  `--domain-ou=${ou}`,
  `--host-keytab=${keytab}`,
];
const joinPassword = { input: `${readLabSecret('join-password')}\n` };
const deleteArgv = (computer: string): string[] => [
  'adcli',
  'delete-computer',
  `--domain=${env.DOMAIN}`,
  `--login-user=${env.JOIN_USER}`,
  '--stdin-password',
  computer,
];
const smbArgv = [
  'bash',
  '-c',
  `auth=$(mktemp); trap 'rm -f "$auth"' EXIT; IFS= read -r key
printf 'username = %s\\npassword = %s\\n' "$1" "$key" >"$auth"
smbclient "$2" -A "$auth" -m SMB3 -c ls`,
  'smb',
  env.STORAGE_ACCOUNT,
  `//${env.FILES_HOST}/${env.SHARE_NAME}`,
];

/** kinit exactly as the agent's KDC look-up runs it: its own krb5.conf (on stdin here) naming one KDC, a memory ccache, no password. */
const probeSh = (computer: string): string[] => [
  'bash',
  '-c',
  `conf=$(mktemp); trap 'rm -f "$conf"' EXIT; cat >"$conf"
KRB5_CONFIG=$conf KRB5CCNAME=MEMORY: kinit "$1" </dev/null`,
  'probe',
  ...probeArgv(computer, env.REALM),
];
const probeConf = (kdc = env.DC_HOSTNAME): ExecOptions => ({ input: probeKrb5Conf(env.REALM, kdc) });

/** The KDC's answers for a missing, an existing, and a disabled computer account, and a KDC that cannot be reached. */
async function captureKdcProbe(): Promise<void> {
  const name = 'DSVM-FIX-KDC';
  await capture(
    'kinit-probe-no-such-account',
    'KDC look-up of a computer account that does not exist',
    probeSh('DSVM-FIX-NONE'),
    probeConf(),
  );
  const joined = await clientExec(CLIENT, joinArgv(name, '/tmp/dsvm-fix-kdc.keytab'), joinPassword);
  if (joined.exitCode !== 0) throw new Error(`join ${name} failed: ${joined.stderr}`);
  try {
    await capture('kinit-probe-account-exists', 'KDC look-up of an existing (enabled) computer account', probeSh(name), probeConf());
    const disabled = await dcExec(['samba-tool', 'user', 'disable', `${name}$`]);
    if (disabled.exitCode !== 0) throw new Error(`disable ${name}$ failed: ${disabled.stderr}`);
    await capture('kinit-probe-account-disabled', 'KDC look-up of a disabled computer account', probeSh(name), probeConf());
  } finally {
    await clientExec(CLIENT, deleteArgv(name), joinPassword);
    await clientExec(CLIENT, ['rm', '-f', '/tmp/dsvm-fix-kdc.keytab']);
  }
  await capture('kinit-probe-kdc-unreachable', 'KDC look-up when the KDC refuses the connection', probeSh(name), probeConf('127.0.0.1:9'));
}

async function main(): Promise<void> {
  mkdirSync(OUT, { recursive: true });
  if (process.argv.includes('kdc-probe')) return captureKdcProbe();

  await capture('adcli-info', 'adcli info DOMAIN: domain discovery facts', ['adcli', 'info', env.DOMAIN]);
  await capture(
    'adcli-join-verbose-success',
    'adcli join --verbose with the join account into the delegated OU',
    joinArgv(COMPUTER, KEYTAB),
    joinPassword,
  );
  await capture('klist-k-keytab', 'klist -k of the keytab adcli join wrote', ['klist', '-k', KEYTAB]);
  await capture('klist-k-keytab-etypes', 'klist -k -e -t of the same keytab', ['klist', '-k', '-e', '-t', KEYTAB]);
  await capture('adcli-testjoin-ok', 'adcli testjoin with a valid keytab', [
    'adcli',
    'testjoin',
    `--domain=${env.DOMAIN}`,
    `--host-keytab=${KEYTAB}`,
  ]);
  await capture(
    'adcli-join-already-joined',
    'adcli join again with the same computer name (account exists, adcli resets it)',
    joinArgv(COMPUTER, `${KEYTAB}.again`),
    joinPassword,
  );
  await capture('adcli-join-wrong-password', 'adcli join with a wrong join password', joinArgv('DSVM-FIX-0002', '/tmp/dsvm-fix-2.keytab'), {
    input: 'not-the-password\n',
  });
  await capture(
    'adcli-join-missing-ou',
    'adcli join into an OU that does not exist',
    joinArgv('DSVM-FIX-0003', '/tmp/dsvm-fix-3.keytab', `OU=NoSuchOU,${env.BASE_DN}`),
    joinPassword,
  );
  await capture(
    'adcli-join-no-such-domain',
    'adcli join for a domain with no DNS records',
    [...joinArgv('DSVM-FIX-0004', '/tmp/dsvm-fix-4.keytab').map((a) => (a.startsWith('--domain=') ? '--domain=nosuchdomain.test' : a))],
    joinPassword,
  );
  await capture('adcli-delete-computer', 'adcli delete-computer by the join account', deleteArgv(COMPUTER), joinPassword);
  await capture('adcli-testjoin-account-deleted', 'adcli testjoin after the computer account was deleted', [
    'adcli',
    'testjoin',
    `--domain=${env.DOMAIN}`,
    `--host-keytab=${KEYTAB}`,
  ]);
  await capture('adcli-testjoin-no-keytab', 'adcli testjoin with a keytab file that does not exist', [
    'adcli',
    'testjoin',
    `--domain=${env.DOMAIN}`,
    '--host-keytab=/tmp/no-such.keytab',
  ]);
  await clientExec(CLIENT, ['rm', '-f', KEYTAB, `${KEYTAB}.again`]);

  // User lookups through a real sssd (id_provider = ad).
  const sssdHost = 'DSVM-FIX-SSSD';
  await clientExec(CLIENT, joinArgv(sssdHost, '/etc/krb5.keytab'), joinPassword);
  const started = await startLabSssd(CLIENT, `${sssdHost.toLowerCase()}.${env.DOMAIN}`);
  if (started.exitCode !== 0) throw new Error(`sssd did not start: ${started.stderr}`);
  try {
    await capture('getent-passwd-alice', 'getent passwd alice through sssd (AD user)', ['getent', 'passwd', 'alice']);
    await capture('getent-passwd-jean-dupont', 'getent passwd Jean.Dupont (dot and upper case in AD)', ['getent', 'passwd', 'Jean.Dupont']);
    await capture('getent-passwd-unknown', 'getent passwd of a user AD does not know', ['getent', 'passwd', 'nosuchuser']);
    await capture('getent-group-dsvm-users', 'getent group dsvm-users through sssd', ['getent', 'group', 'dsvm-users']);
    await capture('id-alice', 'id alice: member of dsvm-users', ['id', 'alice']);
    await capture('id-dsvmadmin', 'id dsvmadmin: member of dsvm-users and dsvm-admins', ['id', 'dsvmadmin']);
    await capture('id-mallory', 'id mallory: in no allowed group', ['id', 'mallory']);
  } finally {
    await stopLabSssd(CLIENT);
    await clientExec(CLIENT, deleteArgv(sssdHost), joinPassword);
  }

  await captureKdcProbe();

  await capture('realm-list', 'realm list in the client VM (no D-Bus there, unlike a real VM)', ['realm', 'list']);

  await capture('smbclient-ok', 'smbclient ls with the storage key (auth file)', smbArgv, {
    input: `${readLabSecret('storage-key')}\n`,
  });
  await capture('smbclient-auth-failure', 'smbclient with a wrong storage key', smbArgv, {
    input: `${Buffer.alloc(64, 7).toString('base64')}\n`,
  });
  const stopped = await lab(['files-stop']);
  if (stopped.exitCode !== 0) throw new Error(`files-stop failed: ${stopped.stderr}`);
  try {
    await capture('smbclient-connection-refused', 'smbclient while the storage server is down', smbArgv, {
      input: `${readLabSecret('storage-key')}\n`,
    });
  } finally {
    await lab(['files-start']);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`capture-fixtures: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
