import t from 'tap';
import { resolveAccount } from '../../../src/tasks/workspace/account.js';
import { FakeRunner } from '../../helpers/fake-runner.js';
import { testConfig } from '../../helpers/context.js';

/**
 * Group rules compare gids resolved through NSS. Each case is a directory
 * the fake NSS serves (getent group per name, id -G per user) and the
 * resolution the login must reach; the names are the ones that broke the
 * old comparison of `id -Gn` words.
 */
const groupDb: Record<string, string> = {
  'dsvm-users': 'dsvm-users:*:70012:alice',
  'aad dc administrators': 'aad dc administrators:*:70010:bob',
  'dsvm-users@contoso.test': 'dsvm-users@contoso.test:*:70012:alice',
  contractors: 'contractors:*:70020:alice',
  'suspended users': 'suspended users:*:70021:',
};
const passwd: Record<string, string> = {
  alice: 'alice:*:70001:70001::/home/alice:/bin/bash',
  bob: 'bob:*:70002:70002::/home/bob:/bin/bash',
  mallory: 'mallory:*:70003:70003::/home/mallory:/bin/bash',
  trudy: 'trudy@fabrikam.test:*:90003:90003::/home/trudy:/bin/bash',
};
/** `id -G`: mallory is in "not dsvm-users" (70011), trudy in fabrikam's own dsvm-users (90012). */
const idG: Record<string, string> = { alice: '70001 513 70012', bob: '70002 513 70010', mallory: '70003 70011', trudy: '90003 90012' };

function nss(over: { groupExit?: number; idExit?: number; idOut?: string } = {}): FakeRunner {
  return new FakeRunner([
    {
      file: 'getent',
      args: (a) => a[0] === 'passwd',
      result: (req) => {
        const line = passwd[req.args![2]!];
        return line ? { stdout: line + '\n' } : { exitCode: 2 };
      },
    },
    {
      file: 'getent',
      args: (a) => a[0] === 'group' && a[1] === '--',
      result: (req) => {
        if (over.groupExit !== undefined) return { exitCode: over.groupExit, stderr: 'sssd gone' };
        const keys = req.args!.slice(2);
        // sssd's AD provider is case-insensitive; getent prints the groups it found and exits 2 if any was missing.
        const found = keys.map((k) => groupDb[k.toLowerCase()]).filter(Boolean);
        return { stdout: found.map((l) => l + '\n').join(''), exitCode: found.length === keys.length ? 0 : 2 };
      },
    },
    {
      file: 'id',
      args: (a) => a[0] === '-G' && a[1] === '--',
      result: (req) => (over.idExit ? { exitCode: over.idExit } : { stdout: (over.idOut ?? idG[req.args![2]!]) + '\n' }),
    },
  ]);
}

const base = { allowGroups: ['dsvm-users'], sudoGroups: ['AAD DC Administrators'] };
const cases: {
  name: string;
  user: string;
  domain?: Record<string, unknown>;
  runner?: FakeRunner;
  want: { ok: boolean; reason?: string; message?: RegExp };
}[] = [
  { name: 'member of the allowed group', user: 'alice', want: { ok: true } },
  { name: 'sudo group with spaces in its name may log in', user: 'bob', want: { ok: true } },
  {
    name: 'look-alike group "not dsvm-users" is refused',
    user: 'mallory',
    want: {
      ok: false,
      reason: 'not-allowed',
      message: /mallory is in none of domain.allowGroups\/sudoGroups \("dsvm-users", "AAD DC Administrators"\)/,
    },
  },
  { name: 'same-named group of a trusted domain is another gid: refused', user: 'trudy', want: { ok: false, reason: 'not-allowed' } },
  {
    name: 'fully qualified names: the bare name is looked up with the domain',
    user: 'alice',
    domain: { fullyQualifiedNames: true, sudoGroups: [] },
    want: { ok: true },
  },
  {
    name: 'no configured group resolves: nobody, and the message says so',
    user: 'alice',
    domain: { allowGroups: ['dsvm-userz'], sudoGroups: [] },
    want: { ok: false, reason: 'not-allowed', message: /none of domain.allowGroups\/sudoGroups \("dsvm-userz"\) resolves through NSS/ },
  },
  {
    name: 'one of two groups missing: the other still counts',
    user: 'bob',
    domain: { allowGroups: ['gone', 'aad dc administrators'] },
    want: { ok: true },
  },
  {
    name: 'getent group fails: an NSS error, not a refusal',
    user: 'alice',
    runner: nss({ groupExit: 1 }),
    want: { ok: false, reason: 'nss-error' },
  },
  { name: 'id -G fails', user: 'alice', runner: nss({ idExit: 1 }), want: { ok: false, reason: 'nss-error' } },
  {
    name: 'id -G prints names (not numbers): an NSS error',
    user: 'alice',
    runner: nss({ idOut: 'alice dsvm-users' }),
    want: { ok: false, reason: 'nss-error' },
  },
  { name: 'no allowGroups: no group look-up at all', user: 'mallory', domain: { allowGroups: [] }, want: { ok: true } },
  {
    name: 'a member of a deny group is refused though in an allowed group (deny wins)',
    user: 'alice',
    domain: { denyGroups: ['contractors'] },
    runner: nss({ idOut: '70001 513 70012 70020' }),
    want: { ok: false, reason: 'denied', message: /alice is in one of domain\.denyGroups \("contractors"\)/ },
  },
  {
    name: 'deny groups without allowGroups: the others may log in',
    user: 'mallory',
    domain: { allowGroups: [], denyGroups: ['contractors', 'Suspended Users'] },
    want: { ok: true },
  },
  {
    name: 'deny groups without allowGroups: a member is refused',
    user: 'alice',
    domain: { allowGroups: [], denyGroups: ['contractors'] },
    runner: nss({ idOut: '70001 70020' }),
    want: { ok: false, reason: 'denied' },
  },
  {
    name: 'a deny group that does not resolve refuses nobody',
    user: 'alice',
    domain: { denyGroups: ['gone'] },
    want: { ok: true },
  },
  {
    name: 'idMapping posix: a user NSS does not know is refused, naming the POSIX attributes',
    user: 'dana',
    domain: { idMapping: 'posix' },
    want: {
      ok: false,
      reason: 'no-posix-ids',
      message: /domain\.idMapping: posix.*uidNumber and gidNumber: give dana POSIX attributes in AD/,
    },
  },
  { name: 'idMapping auto: an unknown user is just unknown', user: 'dana', want: { ok: false, reason: 'unknown-user' } },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const runner = c.runner ?? nss();
    const cfg = testConfig({ domain: { ...base, ...c.domain } });
    const r = await resolveAccount(runner.run, c.user, cfg, 1000);
    t.same(runner.unexpected, [], 'only the expected commands');
    t.equal(r.ok, c.want.ok, r.ok ? 'allowed' : `${r.reason}: ${r.message}`);
    if (!r.ok) {
      t.equal(r.reason, c.want.reason);
      if (c.want.message) t.match(r.message, c.want.message);
    }
    for (const call of runner.calls) t.notOk(call.file === 'id' && call.args?.includes('-Gn'), 'never compares group names');
    if (r.ok === false && r.reason === 'no-posix-ids') t.equal(r.status, 'refused', 'refused: logged as a warning');
    if (c.domain?.allowGroups && (c.domain.allowGroups as string[]).length === 0 && !c.domain.denyGroups)
      t.notOk(
        runner.calls.some((x) => x.file === 'id'),
        'no id call without a group rule',
      );
  });
}
