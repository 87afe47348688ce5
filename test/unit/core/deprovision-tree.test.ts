// deprovision on a tree that looks like a VM after a real join and mount: the
// files come from the renderers the tasks write with, so a file the join
// starts writing is a file this test expects gone. Afterwards every agent file
// is gone, the shared files hold exactly their own lines again, a second run
// finds nothing to do and changes no byte, and `plan` sees a first boot.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { makeTestContext, type TestContext } from '../../helpers/context.js';
import { FakeMounts, KEY } from '../share-mount/helpers.js';
import { deprovision } from '../../../src/app/commands/deprovision.js';
import { StateStore } from '../../../src/agent/state.js';
import { desiredFiles } from '../../../src/tasks/domain-join/files.js';
import { addSssToNsswitch, joinFacts, MKHOMEDIR_SESSION_LINE } from '../../../src/tasks/domain-join/render.js';
import { renderCredentials, writeCredentials } from '../../../src/tasks/share-mount/credentials.js';
import { desiredShare } from '../../../src/tasks/share-mount/desired.js';
import { hashTree } from '../../helpers/tree.js';

const JOIN_SECRET = 'Deprov-Join-Secret-71f3';
const COMPUTER = 'DSVM-7F3A9C01';

/** The config as an admin writes it (raw YAML keys; the agent fills defaults). */
const RAW_CONFIG = {
  azure: { imdsEndpoint: 'http://127.0.0.1:9', managementEndpoint: 'https://127.0.0.1:9' },
  domain: {
    name: 'contoso.test',
    joinUser: 'dsvm-join@CONTOSO.TEST',
    joinPassword: { file: '/etc/dsvm-agent/join-password' },
    allowGroups: ['dsvm-users'],
    sudoGroups: ['dsvm-admins'],
  },
  share: {
    type: 'smb',
    account: 'contosofiles',
    name: 'workspace',
    mountPoint: '/data/workspace',
    key: { file: '/etc/dsvm-agent/storage-key' },
  },
};

/** What the system had before the agent came: the lines that must survive. */
const OWN = {
  krb5: '[libdefaults]\n\tdefault_realm = ATHENA.MIT.EDU\n\tdns_lookup_kdc = true\n',
  nsswitch: 'passwd:         files systemd\ngroup:          files systemd\nshadow:         files\nhosts:          files dns\n',
  realmd: '[service]\nautomatic-install = no\n',
  commonSession: 'session\t[default=1]\t\t\tpam_permit.so\nsession\trequired\t\t\tpam_unix.so\n',
};

/** Write `content` at the system path `file` under the root. */
async function put(tc: TestContext, file: string, content: string, mode = 0o644): Promise<void> {
  const real = tc.paths.under(file);
  await mkdir(path.dirname(real), { recursive: true });
  await writeFile(real, content, { mode });
}

/** A root after `provision`: joined as COMPUTER, share mounted with a key. Returns the agent's files (system paths). */
async function joinedAndMounted(t: Test, tc: TestContext): Promise<string[]> {
  const p = tc.paths;
  await put(tc, '/etc/dsvm-agent/config.yaml', stringify(RAW_CONFIG), 0o600);
  await put(tc, '/etc/dsvm-agent/join-password', JOIN_SECRET, 0o600);
  await put(tc, '/etc/dsvm-agent/storage-key', KEY, 0o600);
  await put(tc, '/etc/krb5.conf', OWN.krb5);
  await put(tc, '/etc/nsswitch.conf', OWN.nsswitch);
  await put(tc, '/etc/realmd.conf', OWN.realmd);
  // Files of other packages and people beside the agent's: they stay.
  await put(tc, '/etc/sudoers.d/README', '# sudo drop-ins\n', 0o440);
  await put(tc, '/etc/ssh/sshd_config.d/50-cloud-init.conf', 'PasswordAuthentication no\n');
  await put(tc, '/etc/smbcredentials/otherstore.cred', 'username=otherstore\npassword=not-ours\n', 0o600);
  await put(tc, '/etc/systemd/system/backup.mount', '[Mount]\nWhat=/dev/sdc1\nWhere=/backup\n');

  // The join: every file the task manages, as its renderers write them.
  const facts = joinFacts(tc.ctx.cfg.domain.name, COMPUTER);
  const { files, nsswitchAdded } = await desiredFiles(tc.ctx, facts);
  const agentFiles: string[] = [];
  for (const f of files) {
    if (f.content === undefined) continue;
    await mkdir(path.dirname(f.path), { recursive: true });
    await writeFile(f.path, f.content, { mode: f.mode });
    if (![p.krb5Conf, p.nsswitchConf, p.realmdConf].includes(f.path)) agentFiles.push(f.path);
  }
  t.same(nsswitchAdded, addSssToNsswitch(OWN.nsswitch).added, 'the join adds sss to nsswitch');
  await put(tc, '/etc/krb5.keytab', 'keytab-bytes', 0o600);
  await put(tc, '/var/lib/sss/db/cache_contoso.test.ldb', 'cache', 0o600);
  // pam-auth-update --enable of the mkhomedir profile.
  await put(tc, '/etc/pam.d/common-session', `${OWN.commonSession}session\toptional\t\t\tpam_mkhomedir.so umask=0077 skel=/etc/skel\n`);
  agentFiles.push(p.krb5Keytab, path.join(p.sssdDbDir, 'cache_contoso.test.ldb'));

  // The mount: its units and the root-only credentials file.
  tc.ctx.state.facts.computerName = COMPUTER;
  const d = await desiredShare(tc.ctx, '6.8.0-1015-azure');
  for (const [name, content] of Object.entries(d.units.files)) {
    await put(tc, path.join('/etc/systemd/system', name), content);
    agentFiles.push(path.join(p.systemdUnitDir, name));
  }
  await writeCredentials(d.credentialsFile, renderCredentials(d.share.account, KEY));
  agentFiles.push(d.credentialsFile);

  // The state first boot leaves.
  const state = tc.ctx.state;
  state.firstBootStartedAt = state.firstBootCompletedAt = '2026-01-01T00:00:00.000Z';
  state.tasks = { preflight: { appliedAt: state.firstBootStartedAt }, 'domain-join': {}, 'share-mount': {} };
  Object.assign(state.facts, { appliedConfig: tc.ctx.cfg, nsswitchAdded, shareSource: d.source, shareUnit: d.units.entry });
  await new StateStore(p.stateFile, tc.log).write(state);
  agentFiles.push(p.stateFile);
  return agentFiles;
}

/** Fakes for what deprovision runs: findmnt/umount on a little mount table, pam-auth-update on common-session. */
function fakeSystem(tc: TestContext): FakeMounts {
  const mounts = new FakeMounts(tc.root, 'contosofiles.file.core.windows.net');
  mounts.state = 'findmnt-cifs.json';
  for (const c of mounts.commands()) tc.runner.on(c);
  tc.runner.on({
    file: 'pam-auth-update',
    args: ['--package', '--remove', 'dsvm-agent-mkhomedir'],
    result: async () => {
      const file = path.join(tc.paths.pamDir, 'common-session');
      await writeFile(file, (await readFile(file, 'utf8')).replace(MKHOMEDIR_SESSION_LINE, '').replace(/\n\n$/, '\n'));
      return {};
    },
  });
  // The IMDS guard's undo: no table in this kernel.
  tc.runner.on({
    file: 'nft',
    args: ['delete', 'table', 'inet', 'dsvm_agent'],
    result: { exitCode: 1, stderr: 'Error: No such file or directory\n' },
  });
  tc.services.active.add('sssd');
  tc.services.active.add('dsvm-agent.service');
  return mounts;
}

async function runDeprovision(tc: TestContext, opts: { leaveDomain?: boolean } = {}): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await deprovision(
    { root: tc.root },
    { ...opts, yes: true },
    {
      base: { run: tc.runner.run, log: tc.log },
      services: tc.services,
      io: { out: (s) => (out += s), err: (s) => (err += s), interactive: false, ask: async () => 'n' },
    },
  );
  return { code, out, err };
}

t.test('deprovision after a join and a mount removes every trace, once', async (t) => {
  const tc = await makeTestContext({ config: RAW_CONFIG });
  const agentFiles = await joinedAndMounted(t, tc);
  const mounts = fakeSystem(tc);
  for (const f of agentFiles) t.ok(existsSync(f), `before: ${path.relative(tc.root, f)} exists`);

  const first = await runDeprovision(tc);
  t.equal(first.code, 0, `first run: exit 0 (${first.err})`);
  t.equal(mounts.state, 'findmnt-not-mounted.json', 'the share is unmounted');
  for (const f of agentFiles) t.notOk(existsSync(f), `after: ${path.relative(tc.root, f)} is gone`);
  // The lock file stays (empty): removing a held lock would let a new provision lock another file meanwhile.
  t.same(await readdir(tc.paths.stateDir).catch(() => []), ['agent.lock'], 'nothing left of the state but the empty lock file');
  t.equal(await readFile(tc.paths.lockFile, 'utf8'), '', 'the lock file is empty');
  t.notOk(existsSync(path.join(tc.paths.smbCredentialsDir, 'contosofiles.cred')), 'no storage key left on disk');

  const read = (file: string): Promise<string> => readFile(tc.paths.under(file), 'utf8');
  t.equal(await read('/etc/krb5.conf'), OWN.krb5, 'krb5.conf: only its own lines');
  t.equal(await read('/etc/nsswitch.conf'), OWN.nsswitch, 'nsswitch.conf: sss taken off again');
  t.equal(await read('/etc/realmd.conf'), OWN.realmd, 'realmd.conf: only its own lines');
  t.equal(await read('/etc/pam.d/common-session'), OWN.commonSession, 'common-session: no pam_mkhomedir');
  for (const kept of [
    '/etc/sudoers.d/README',
    '/etc/ssh/sshd_config.d/50-cloud-init.conf',
    '/etc/smbcredentials/otherstore.cred',
    '/etc/systemd/system/backup.mount',
    '/etc/dsvm-agent/config.yaml',
  ])
    t.ok(existsSync(tc.paths.under(kept)), `${kept} is not the agent's: kept`);
  t.notOk(first.out.includes(JOIN_SECRET) || first.out.includes(KEY), 'no secret in the output');
  t.same(tc.runner.unexpected, [], 'no command outside the fakes');

  const after = await hashTree(tc.root);
  const second = await runDeprovision(tc);
  t.equal(second.code, 0, `second run: exit 0 (${second.err})`);
  t.match(second.out, /nothing was left to remove/, 'second run: says there was nothing to do');
  t.notMatch(second.out, /^- /m, 'second run: reports no removal');
  t.equal(await hashTree(tc.root), after, 'second run: the tree is byte for byte the same');

  // `plan` now sees a machine that never ran first boot (run from the source, so it is this tree's plan).
  const plan = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts', '--root', tc.root, 'plan'], {
    encoding: 'utf8',
    timeout: 90_000,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
  });
  t.equal(plan.status, 0, `plan: exit 0 (${plan.stderr})`);
  t.match(plan.stdout, /^first boot for this VM id: every task runs$/m, 'plan: first boot pending');
});
