/**
 * The IMDS guard in client VM c1, against the lab's IMDS fake at the
 * configured address (azure.imdsEndpoint = the fake's loopback URL): the
 * agent's task loads its nftables table, then root gets a token, a user
 * whose effective gid is an allowed group gets one, and any other user is
 * refused at once with a TCP reset, including one who holds the allowed
 * group only as a supplementary group (nftables' meta skgid is the socket
 * opener's fsgid). The fakes' other ports stay open to everyone. Undo opens
 * IMDS again. The table lives in c1's network namespace only.
 */
import path from 'node:path';
import t from 'tap';
import { clientExec, describeResult, fakesUrls, labEnv, labSkipReason, PROJECT_ROOT, type ExecResult } from './harness.js';

const skip = labSkipReason();
const CLIENT = 'c1';
const TSX = path.join(PROJECT_ROOT, 'node_modules/.bin/tsx');
const DRIVER = path.join(PROJECT_ROOT, 'test/fixtures/imds-guard/drive-task.ts');
const CONFIG = `/etc/dsvm-agent/imds-guard-lab-${process.pid}.yaml`;
/** Debian's nobody/nogroup: the allowed group is given by name, so NSS resolves it. */
const NOBODY = 65534;
const ALLOWED_GROUP = 'nogroup';
const OTHER_GID = 100; // users

/** A token request as IMDS clients send it; prints "HTTP_CODE SECONDS" whatever happens. */
function tokenRequest(imds: string): string[] {
  const url = `${imds}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net`;
  return ['curl', '-sS', '-o', '/dev/null', '-w', '%{http_code} %{time_total}\\n', '--max-time', '10', '-H', 'Metadata: true', url];
}

/** Run a command in c1 as uid/gid (primary) with the given supplementary groups. */
function as(uid: number, gid: number, groups: number[], argv: string[]): Promise<ExecResult> {
  const supp = groups.length ? ['--groups', groups.join(',')] : ['--clear-groups'];
  return clientExec(CLIENT, ['setpriv', `--reuid=${uid}`, `--regid=${gid}`, ...supp, '--', ...argv]);
}

async function drive(action: string): Promise<Record<string, unknown>> {
  const r = await clientExec(CLIENT, [TSX, DRIVER, '--config', CONFIG, action], { timeoutMs: 120_000 });
  try {
    return JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '') as Record<string, unknown>;
  } catch {
    throw new Error(describeResult(`imds-guard driver ${action}`, r));
  }
}

t.test('IMDS guard in a client VM', { skip }, async (t) => {
  const env = labEnv();
  const fakes = fakesUrls(CLIENT);
  const { port } = new URL(fakes.imds);
  const config = [
    `domain: { name: ${env.DOMAIN}, joinUser: ${env.JOIN_USER}, joinPassword: { keyVault: { vaultUrl: "${fakes.keyVault}", name: ${env.KEYVAULT_SECRET_NAME} } } }`,
    `azure: { imdsEndpoint: "${fakes.imds}", imdsAccess: { allowGroups: [${ALLOWED_GROUP}] } }`,
    '',
  ].join('\n');
  const write = await clientExec(CLIENT, ['sh', '-c', 'umask 077 && mkdir -p /etc/dsvm-agent && cat > "$1"', 'sh', CONFIG], {
    input: config,
  });
  t.equal(write.exitCode, 0, describeResult('write config', write));
  t.teardown(async () => {
    await clientExec(CLIENT, ['nft', 'delete', 'table', 'inet', 'dsvm_agent']);
    await clientExec(CLIENT, ['rm', '-f', CONFIG, '/etc/dsvm-agent/imds-guard.nft', '/etc/systemd/system/dsvm-agent-imds-guard.service']);
  });

  const before = await as(NOBODY, OTHER_GID, [], tokenRequest(fakes.imds));
  t.match(before.stdout, /^200 /, `before the guard any user gets a token (${before.stdout.trim()})`);

  const first = await drive('provision');
  t.match(first, { status: 'ok', changed: true }, `provision installs the guard: ${JSON.stringify(first)}`);
  t.match(
    String((first.changes as string[] | undefined)?.[0]),
    new RegExp(`root and nogroup \\(gid ${NOBODY}\\) may reach 127\\.0\\.0\\.1:${port}`),
  );
  const second = await drive('provision');
  t.match(second, { status: 'ok', changed: false }, 'a second run changes nothing (the listed table equals the rendered one)');
  const listed = await clientExec(CLIENT, ['nft', 'list', 'table', 'inet', 'dsvm_agent']);
  t.match(listed.stdout, new RegExp(`ip daddr 127\\.0\\.0\\.1 tcp dport ${port} .*reject with tcp reset`), 'the table is in c1');

  const root = await clientExec(CLIENT, tokenRequest(fakes.imds));
  t.match(root.stdout, /^200 /, `root gets a token (${root.stdout.trim()})`);
  const allowed = await clientExec(CLIENT, ['runuser', '-u', 'nobody', '--', ...tokenRequest(fakes.imds)]);
  t.match(allowed.stdout, /^200 /, `nobody, primary group nogroup (allowed), gets a token (${allowed.stdout.trim()})`);

  const refused = await as(NOBODY, OTHER_GID, [], tokenRequest(fakes.imds));
  t.match(refused.stdout, /^000 /, 'a user of another group gets no answer');
  t.match(refused.stderr, /Couldn't connect|Connection refused/, `refused by a reset: ${refused.stderr.trim()}`);
  t.ok(Number(refused.stdout.split(' ')[1]) < 1, `and at once, not after a timeout (${refused.stdout.trim()} s)`);

  const supplementary = await as(NOBODY, OTHER_GID, [NOBODY], tokenRequest(fakes.imds));
  t.match(
    supplementary.stdout,
    /^000 /,
    'the allowed group as a supplementary group only does not count (meta skgid is the effective gid)',
  );
  const sg = await as(NOBODY, NOBODY, [], tokenRequest(fakes.imds));
  t.match(sg.stdout, /^200 /, 'the same user with the group as effective gid (sg/newgrp) gets a token');

  const control = await as(
    NOBODY,
    OTHER_GID,
    [],
    ['curl', '-sS', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '10', `${fakes.control}/health`],
  );
  t.equal(control.stdout, '200', "the fakes' other port is not guarded: only IMDS's address and port are");

  const check = await drive('check');
  t.match(check, { state: 'ok' }, `the periodic check sees the guard: ${JSON.stringify(check)}`);
  await clientExec(CLIENT, ['nft', 'delete', 'table', 'inet', 'dsvm_agent']);
  const flushed = await drive('check');
  t.match(flushed, { state: 'fail', reason: /table is gone/ }, 'and fails once the table is flushed');
  const again = await drive('provision');
  t.match(again, { status: 'ok', changed: true }, 'provision puts it back');

  const undo = await drive('undo');
  t.match(undo, { removed: ['nftables table inet dsvm_agent'] }, `undo removes the table: ${JSON.stringify(undo)}`);
  const after = await as(NOBODY, OTHER_GID, [], tokenRequest(fakes.imds));
  t.match(after.stdout, /^200 /, 'after undo any user reaches IMDS again');
});
