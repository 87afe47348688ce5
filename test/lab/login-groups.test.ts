/**
 * Login group rules against the real DC and real sssd (issue 15, defect 3):
 * the agent compares numeric gids resolved through NSS, so
 * - a sudo group whose name has spaces ("AAD DC Administrators", the example
 *   config's own value) lets its members log in;
 * - a look-alike group ("not dsvm-users") does not pass as dsvm-users.
 * The groups and a member without a password (carol, random password) are
 * made on the DC's own sam.ldb for this test and removed afterwards. The
 * client joins with adcli and runs a plain sssd (test/lab/sssd.ts), then
 * `dsvm-agent login --user NAME --json` as PAM would, with no daemon.
 */
import t from 'tap';
import { clientExec, dcExec, describeResult, lab, labEnv, labSkipReason, PROJECT_ROOT, readLabSecret, type ExecResult } from './harness.js';
import { stopLabSssd, upJoinedClient } from './sssd.js';

const CLIENT = 'c8';
const IP = '10.77.0.18';
const HOSTNAME = 'dsvm-groups-lab-0008';
const COMPUTER = 'DSVM-GRP-08';
const CONFIG = '/etc/dsvm-agent/groups-lab.yaml';
const AGENT = `${PROJECT_ROOT}/bin/dsvm-agent`;
const SPACED = 'AAD DC Administrators';
const LOOKALIKE = 'not dsvm-users';

/** Run samba-tool on the DC; a failure is thrown with its output. */
async function dc(argv: string[], okToFail = false): Promise<ExecResult> {
  const r = await dcExec(['samba-tool', ...argv]);
  if (r.exitCode !== 0 && !okToFail) throw new Error(describeResult(`samba-tool ${argv.join(' ')}`, r));
  return r;
}

async function removeObjects(): Promise<void> {
  await dc(['user', 'delete', 'carol'], true);
  await dc(['group', 'delete', SPACED], true);
  await dc(['group', 'delete', LOOKALIKE], true);
}

interface Outcome {
  status: string;
  reason?: string;
  message: string;
}

const skip = labSkipReason();
if (skip) {
  t.plan(0, skip);
} else {
  const env = labEnv();
  const login = async (user: string): Promise<Outcome> => {
    const r = await clientExec(CLIENT, [AGENT, '--config', CONFIG, 'login', '--user', user, '--json'], { timeoutMs: 60_000 });
    try {
      return JSON.parse(r.stdout) as Outcome;
    } catch {
      throw new Error(describeResult(`login ${user}`, r));
    }
  };
  const exists = async (p: string) => (await clientExec(CLIENT, ['test', '-e', p])).exitCode === 0;

  t.before(async () => {
    await removeObjects();
    await dc(['group', 'add', SPACED]);
    await dc(['group', 'add', LOOKALIKE]);
    await dc(['user', 'create', 'carol', '--random-password', '--given-name=Carol', '--surname=Admin']);
    await dc(['group', 'addmembers', SPACED, 'carol']);
    await dc(['group', 'addmembers', LOOKALIKE, 'mallory']);
    await upJoinedClient(CLIENT, IP, HOSTNAME, COMPUTER);
    const config = [
      `domain: { name: ${env.DOMAIN}, joinUser: ${env.JOIN_USER}, joinPassword: { file: /etc/dsvm-agent/join-password }, allowGroups: [${env.USERS_GROUP}], sudoGroups: ["${SPACED}"] }`,
      // The first NSS answer for a new user comes from the DC: give the local login time for it.
      'workspace: { loginTimeoutMs: 20000 }',
    ].join('\n');
    const w = await clientExec(CLIENT, ['bash', '-c', `mkdir -p /etc/dsvm-agent && cat >${CONFIG}`], { input: config });
    if (w.exitCode !== 0) throw new Error(describeResult('write config', w));
  });

  t.teardown(async () => {
    await stopLabSssd(CLIENT).catch(() => undefined);
    await clientExec(
      CLIENT,
      ['adcli', 'delete-computer', `--domain=${env.DOMAIN}`, `--login-user=${env.JOIN_USER}`, '--stdin-password', COMPUTER],
      { input: `${readLabSecret('join-password')}\n` },
    ).catch(() => undefined);
    await lab(['client-down', CLIENT]).catch(() => undefined);
    await removeObjects().catch(() => undefined);
  });

  t.test('NSS sees the groups as the agent must read them', async (t) => {
    const spaced = await clientExec(CLIENT, ['getent', 'group', SPACED]);
    t.equal(spaced.exitCode, 0, describeResult(`getent group "${SPACED}"`, spaced));
    t.match(spaced.stdout.toLowerCase(), /^aad dc administrators:[^:]*:\d+:/, 'a group name with spaces, one entry');
    const names = await clientExec(CLIENT, ['id', '-Gn', 'mallory']);
    // What the old comparison split on whitespace: "not dsvm-users" holds the word "dsvm-users".
    t.match(names.stdout, /not dsvm-users/, 'mallory is in the look-alike group');
  });

  t.test('a member of the sudo group with spaces gets a workspace', async (t) => {
    const carol = await login('carol');
    t.not(carol.reason, 'not-allowed', carol.message);
    t.match(carol.status, /^(done|partial)$/, carol.message);
    t.ok(await exists('/data/workspace/carol/notebooks'), 'her folder was made');
  });

  t.test('a member of "not dsvm-users" is refused', async (t) => {
    const mallory = await login('mallory');
    t.equal(mallory.status, 'skipped', mallory.message);
    t.equal(mallory.reason, 'not-allowed');
    t.match(mallory.message, /mallory is in none of domain\.allowGroups\/sudoGroups/);
    t.notOk(await exists('/data/workspace/mallory'), 'no folder for mallory');
  });

  t.test('a member of dsvm-users still gets a workspace', async (t) => {
    const alice = await login('alice');
    t.match(alice.status, /^(done|partial)$/, alice.message);
    t.ok(await exists('/data/workspace/alice/notebooks'));
  });
}
