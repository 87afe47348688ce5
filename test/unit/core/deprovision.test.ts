// deprovision for image capture: works with no config at all (the image is
// often captured before cloud-init writes one), falls back to the config the
// agent last provisioned with, asks before it acts (on a terminal; `--yes`
// otherwise), stops the daemon and holds the first-boot lock while it works,
// and is a no-op the second time.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { stringify } from 'yaml';
import { makeTestContext, type TestContext } from '../../helpers/context.js';
import type { FakeCommand } from '../../helpers/fake-runner.js';
import { FakeMounts } from '../share-mount/helpers.js';
import { deprovision } from '../../../src/app/commands/deprovision.js';
import { acquireLock } from '../../../src/agent/lock.js';
import { hashTree } from '../../helpers/tree.js';

const SHARE = { account: 'contosofiles', name: 'workspace', key: { file: '/etc/dsvm-agent/k' } };
const APPLIED = { domain: { name: 'contoso.test', joinUser: 'j', joinPassword: { file: '/etc/dsvm-agent/p' } }, share: SHARE };
const CREDS = 'etc/smbcredentials/contosofiles.cred';

interface World {
  /** Write /etc/dsvm-agent/config.yaml (else only the state knows the share). */
  config?: boolean;
  state?: boolean;
  credentials?: boolean;
}

/** A temp root with fakes: the share is not mounted; the state remembers what was provisioned. */
async function world(w: World, commands: FakeCommand[] = []): Promise<TestContext> {
  const tc = await makeTestContext({ commands });
  await rm(tc.paths.configDir, { recursive: true, force: true });
  if (w.config) {
    await mkdir(tc.paths.configDir, { recursive: true });
    await writeFile(tc.paths.configFile, stringify(APPLIED), { mode: 0o600 });
  }
  if (w.state) {
    await mkdir(tc.paths.stateDir, { recursive: true });
    const state = { version: 1, vmId: 'vm-1', vmIdSource: 'imds', tasks: {}, facts: { appliedConfig: APPLIED, computerName: 'DSVM-1' } };
    await writeFile(tc.paths.stateFile, JSON.stringify(state));
  }
  if (w.credentials) {
    await mkdir(path.join(tc.root, 'etc/smbcredentials'), { recursive: true, mode: 0o700 });
    await writeFile(path.join(tc.root, CREDS), 'username=contosofiles\npassword=x\n', { mode: 0o600 });
  }
  for (const c of new FakeMounts(tc.root).commands()) tc.runner.on(c);
  return tc;
}

interface Run {
  code: number;
  out: string;
  err: string;
  asked: string[];
}

async function run(
  tc: TestContext,
  opts: { leaveDomain?: boolean; yes?: boolean } = { yes: true },
  term: { interactive: boolean; answer?: string } = { interactive: false },
): Promise<Run> {
  const r: Run = { code: -1, out: '', err: '', asked: [] };
  r.code = await deprovision({ root: tc.root }, opts, {
    base: { run: tc.runner.run, log: tc.log },
    services: tc.services,
    io: {
      out: (s) => (r.out += s),
      err: (s) => (r.err += s),
      interactive: term.interactive,
      ask: async (q) => (r.asked.push(q), term.answer ?? ''),
    },
  });
  return r;
}

t.test('without a config file', async (t) => {
  const cases = [
    { name: 'nothing there', w: {}, expect: /config: none/ },
    {
      name: 'config gone, state remembers the share',
      w: { state: true, credentials: true },
      expect: /config: the last provisioned config[\s\S]*removed credentials \/etc\/smbcredentials\/contosofiles\.cred/,
    },
  ];
  for (const c of cases) {
    const tc = await world(c.w);
    const first = await run(tc);
    t.equal(first.code, 0, `${c.name}: exit 0 (${first.err})`);
    t.match(first.out, c.expect, `${c.name}: output`);
    t.same(await readdir(tc.paths.stateDir).catch(() => []), ['agent.lock'], `${c.name}: state removed, the empty lock file stays`);
    t.notOk(existsSync(path.join(tc.root, CREDS)), `${c.name}: no credentials left`);
    const second = await run(tc);
    t.equal(second.code, 0, `${c.name}: second run exit 0`);
    t.notMatch(second.out, /^- /m, `${c.name}: second run removes nothing`);
    t.match(second.out, /nothing was left to remove/, `${c.name}: second run says so`);
  }
});

t.test('asks before it acts', async (t) => {
  const cases: {
    name: string;
    opts: { leaveDomain?: boolean; yes?: boolean };
    term: { interactive: boolean; answer?: string };
    code: number;
    asks: RegExp | undefined;
    acts: boolean;
  }[] = [
    { name: 'no terminal, no --yes: refuses', opts: {}, term: { interactive: false }, code: 2, asks: undefined, acts: false },
    { name: 'no terminal, --yes', opts: { yes: true }, term: { interactive: false }, code: 0, asks: undefined, acts: true },
    { name: 'terminal, --yes: no question', opts: { yes: true }, term: { interactive: true }, code: 0, asks: undefined, acts: true },
    { name: 'terminal, answer no', opts: {}, term: { interactive: true, answer: 'n' }, code: 1, asks: /Proceed\? \[y\/N\]/, acts: false },
    { name: 'terminal, just Enter', opts: {}, term: { interactive: true, answer: '' }, code: 1, asks: /Proceed/, acts: false },
    {
      name: 'terminal, answer yes',
      opts: {},
      term: { interactive: true, answer: 'yes' },
      code: 0,
      asks: /stop dsvm-agent\.service[\s\S]*\/etc\/smbcredentials\/contosofiles\.cred[\s\S]*keeps \/etc\/dsvm-agent\/config\.yaml/,
      acts: true,
    },
    {
      name: '--leave-domain names the account it deletes',
      opts: { leaveDomain: true },
      term: { interactive: true, answer: 'n' },
      code: 1,
      asks: /delete the computer account DSVM-1 from CONTOSO\.TEST/,
      acts: false,
    },
  ];
  for (const c of cases) {
    const tc = await world({ config: true, state: true, credentials: true });
    tc.services.active.add('dsvm-agent.service');
    const before = await hashTree(tc.root);
    const r = await run(tc, c.opts, c.term);
    t.equal(r.code, c.code, `${c.name}: exit ${c.code} (${r.err})`);
    if (c.asks) t.match(r.asked.join(''), c.asks, `${c.name}: the question`);
    else t.same(r.asked, [], `${c.name}: asks nothing`);
    if (c.acts) {
      t.notOk(existsSync(path.join(tc.root, CREDS)), `${c.name}: removed`);
    } else {
      t.equal(await hashTree(tc.root), before, `${c.name}: nothing changed`);
      t.same(tc.services.actions, [], `${c.name}: the daemon was left alone`);
      t.same(tc.runner.calls, [], `${c.name}: nothing run`);
    }
    if (c.code === 2) t.match(r.err, /--yes/, `${c.name}: says how to confirm without a terminal`);
  }
});

t.test('stops the daemon first and holds the first-boot lock while it works', async (t) => {
  const seen: { held?: boolean; stopped?: boolean }[] = [];
  let look = async (): Promise<void> => undefined;
  const findmnt: FakeCommand = {
    file: 'findmnt',
    result: async () => (await look(), { stdout: '{"filesystems": []}' }),
  };
  const tc = await world({ config: true, state: true, credentials: true }, [findmnt]);
  tc.services.active.add('dsvm-agent.service');
  const lock = tc.paths.lockFile;
  // flock(1) -n on the same file from outside: exit 1 while deprovision holds the lock, 0 once free.
  const busy = (): boolean => spawnSync('flock', ['--exclusive', '--nonblock', lock, 'true']).status === 1;
  look = async () => {
    seen.push({ held: busy(), stopped: !tc.services.active.has('dsvm-agent.service') });
  };
  const r = await run(tc);
  t.equal(r.code, 0, r.err);
  t.equal(tc.services.actions[0], 'stop dsvm-agent.service', 'the daemon is stopped before anything else');
  t.notOk(
    tc.services.actions.some((a) => a.startsWith('disable dsvm-agent')),
    'the unit stays enabled for the next first boot',
  );
  t.match(r.out, /stopped dsvm-agent\.service/, 'says it stopped the daemon');
  t.ok(seen.length > 0, 'the share was looked at');
  for (const s of seen) {
    t.ok(s.held, 'the lock is held while the tasks undo');
    t.ok(s.stopped, 'the daemon was already stopped');
  }
  t.notOk(busy(), 'the lock is released');
  t.ok(existsSync(lock), 'and its file stays: nobody can lock a second file meanwhile');
  t.match(r.out, /kept \/etc\/dsvm-agent\/config\.yaml/, 'says the config stays');
});

t.test('refuses while something else works on this machine', async (t) => {
  await t.test('a provision or first boot holds the lock', async (t) => {
    const tc = await world({ config: true, state: true, credentials: true });
    // A running `provision` holds the lock: this test holds it, on its own open file.
    const release = await acquireLock(tc.paths.lockFile, 'provision');
    t.teardown(release);
    await t.rejects(run(tc), { name: 'AgentError', kind: 'notReady', reason: 'locked', message: /holds the lock/ });
    t.ok(existsSync(path.join(tc.root, CREDS)), 'nothing removed');
    t.ok(existsSync(tc.paths.stateFile), 'state kept');
  });
  await t.test('a daemon answers on the socket that no service manager stopped', async (t) => {
    const tc = await world({ config: true, state: true, credentials: true });
    await mkdir(tc.paths.runDir, { recursive: true });
    const server = net.createServer((s) => s.end());
    await new Promise<void>((resolve) => server.listen(tc.paths.socketFile, resolve));
    t.teardown(() => server.close());
    await t.rejects(run(tc), { name: 'AgentError', kind: 'notReady', message: /daemon .*running/ });
    t.ok(existsSync(path.join(tc.root, CREDS)), 'nothing removed');
    t.ok(existsSync(tc.paths.stateFile), 'state kept');
  });
});

t.test('the command line: no terminal needs --yes', async (t) => {
  const tc = await world({ state: true, credentials: true });
  const cli = (...args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts', '--root', tc.root, 'deprovision', ...args], {
      encoding: 'utf8',
      timeout: 60_000,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    });
  const refused = cli();
  t.equal(refused.status, 2, `without --yes: exit 2 (${refused.stderr})`);
  t.match(refused.stderr, /--yes/, 'says what to pass');
  t.ok(existsSync(path.join(tc.root, CREDS)), 'without --yes: nothing removed');
  const done = cli('--yes');
  // The real nft runs here (as root, in make test's own network namespace); without nft there is no table to remove.
  const nft = ['/usr/sbin/nft', '/usr/bin/nft', '/sbin/nft'].some((f) => existsSync(f));
  if (process.getuid!() === 0 || !nft) {
    t.equal(done.status, 0, `--yes: exit 0 (${done.stderr})`);
  } else {
    // Without root, nft may not touch the kernel's tables: the one step that needs root says so.
    t.equal(done.status, 1, `--yes, not root: exit 1 (${done.stderr})`);
    t.match(done.stderr, /nft delete table inet dsvm_agent: .*\(fix: run it as root/s, 'names the step that needs root, and the fix');
    t.match(done.stderr, /deprovision incomplete: state kept/, 'and keeps the state for the next run');
  }
  t.notOk(existsSync(path.join(tc.root, CREDS)), '--yes: removed');
});
