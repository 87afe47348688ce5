import t from 'tap';
import { makePaths } from '../../../src/agent/paths.js';
import {
  bothDirectories,
  isAllowed,
  mountPoints,
  loginGroupNames,
  parseGroupEntryIds,
  parseGroupIds,
  parsePasswdLine,
  planUserLinks,
  skipReason,
} from '../../../src/tasks/workspace/plan.js';
import { testConfig } from '../../helpers/context.js';

t.test('parsePasswdLine', async (t) => {
  const cases: { name: string; line: string; want: unknown }[] = [
    {
      name: 'local user',
      line: 'alice:x:1001:1001:Alice:/home/alice:/bin/bash\n',
      want: { name: 'alice', uid: 1001, gid: 1001, home: '/home/alice' },
    },
    {
      name: 'sssd fully qualified with spaces in gecos',
      line: 'jean.dupont@contoso.test:*:1977801105:1977800513:Jean Dupont:/home/jean.dupont@contoso.test:/bin/bash',
      want: { name: 'jean.dupont@contoso.test', uid: 1977801105, gid: 1977800513, home: '/home/jean.dupont@contoso.test' },
    },
    { name: 'too few fields', line: 'alice:x:1001:1001:/home/alice:/bin/bash', want: undefined },
    { name: 'non-numeric uid', line: 'alice:x:abc:1001::/home/alice:/bin/bash', want: undefined },
    { name: 'relative home', line: 'alice:x:1001:1001::home/alice:/bin/bash', want: undefined },
    { name: 'empty', line: '', want: undefined },
  ];
  for (const c of cases) t.same(parsePasswdLine(c.line), c.want, c.name);
});

t.test('group parsing and the names to resolve', async (t) => {
  t.same(parseGroupIds('1001 1002  70001\n'), [1001, 1002, 70001], 'id -G: numbers');
  t.equal(parseGroupIds('alice dsvm-users\n'), undefined, 'names are not ids');
  t.equal(parseGroupIds(''), undefined, 'nothing is not a list');
  t.same(
    parseGroupEntryIds('aad dc administrators:*:70010:bob\nnot dsvm-users:*:70011:\ndsvm-users:*:70012:alice,carol\n'),
    [70010, 70011, 70012],
    'getent group: the third field, names with spaces kept whole',
  );
  t.same(parseGroupEntryIds('garbage\n'), []);
  const cfg = testConfig({ domain: { allowGroups: ['dsvm-users'], sudoGroups: ['AAD DC Administrators', 'dsvm-users'] } });
  t.same(loginGroupNames(cfg), ['dsvm-users', 'AAD DC Administrators'], 'allow + sudo, once each');
  const fq = testConfig({ domain: { allowGroups: ['dsvm-users', 'ops@fabrikam.test'], fullyQualifiedNames: true } });
  t.same(loginGroupNames(fq), ['dsvm-users@contoso.test', 'ops@fabrikam.test'], 'qualified as sssd knows them');
  t.same(loginGroupNames(testConfig({ domain: { sudoGroups: ['admins'] } })), [], 'no allowGroups: no group rule');
});

t.test('isAllowed compares gids', async (t) => {
  const cases: { name: string; user: number[]; allowed: number[]; want: boolean }[] = [
    { name: 'member of an allowed group', user: [1001, 70012], allowed: [70012], want: true },
    { name: 'in no allowed group', user: [1001, 513], allowed: [70012], want: false },
    { name: 'no allowed group resolved: nobody', user: [1001], allowed: [], want: false },
  ];
  for (const c of cases) t.equal(isAllowed(c.user, c.allowed), c.want, c.name);
});

t.test('skipReason: system accounts', async (t) => {
  const cfg = testConfig();
  t.match(skipReason({ name: 'daemon', uid: 1, gid: 1, home: '/usr/sbin' }, cfg), /below workspace.minUid/);
  t.match(skipReason({ name: 'root', uid: 0, gid: 0, home: '/root' }, cfg), /system account/);
  t.equal(skipReason({ name: 'alice', uid: 1000, gid: 1000, home: '/home/alice' }, cfg), undefined);
});

t.test('planUserLinks', async (t) => {
  const alice = { name: 'alice', uid: 1001, gid: 1001, home: '/home/alice' };
  const cases: {
    name: string;
    account: typeof alice;
    config?: Record<string, unknown>;
    root?: string;
    want: Record<string, unknown> | RegExp;
  }[] = [
    {
      name: 'defaults',
      account: alice,
      want: {
        folder: 'alice',
        userDir: '/data/workspace/alice',
        notebooksDir: '/data/workspace/alice/notebooks',
        home: '/home/alice',
        homeDirs: ['notebooks'],
        homeLink: 'notebooks/remote',
        linkTarget: '/data/workspace/alice/notebooks',
      },
    },
    {
      name: 'custom root, notebooks and a deeper link',
      account: { ...alice, name: 'Jean.Dupont', home: '/home/Jean.Dupont' },
      config: { workspace: { root: '/mnt/team', notebooks: 'nb', homeLink: 'work/shared/team' } },
      want: {
        folder: 'jean.dupont',
        userDir: '/mnt/team/jean.dupont',
        notebooksDir: '/mnt/team/jean.dupont/nb',
        home: '/home/Jean.Dupont',
        homeDirs: ['work', 'shared'],
        homeLink: 'work/shared/team',
        linkTarget: '/mnt/team/jean.dupont/nb',
      },
    },
    {
      name: 'a test root prefixes every path, link target included',
      account: alice,
      root: '/tmp/r',
      want: { userDir: '/tmp/r/data/workspace/alice', home: '/tmp/r/home/alice', linkTarget: '/tmp/r/data/workspace/alice/notebooks' },
    },
    { name: 'home with .. is normalised', account: { ...alice, home: '/home/../home/alice' }, want: { home: '/home/alice' } },
    { name: 'a name NSS should never return is refused', account: { ...alice, name: 'a/b' }, want: /"\/"/ },
  ];
  for (const c of cases) {
    const plan = planUserLinks(c.account, testConfig(c.config ?? {}), makePaths(c.root ?? '/'));
    if (c.want instanceof RegExp) {
      t.ok('ok' in plan && !plan.ok, c.name);
      if ('ok' in plan) t.match(plan.message, c.want, c.name);
    } else {
      t.match(plan, c.want, c.name);
    }
  }
});

t.test('bothDirectories and mountPoints', async (t) => {
  t.equal(bothDirectories('directory\ndirectory\n'), true);
  t.equal(bothDirectories('directory\nsymbolic link\n'), false);
  t.equal(bothDirectories('directory\n'), false);
  const info =
    '36 35 98:0 / /data/workspace rw,noatime master:1 - cifs //x/workspace rw\n37 35 98:0 / /mnt/with\\040space rw - ext4 /dev/sda1 rw\n';
  const mp = mountPoints(info);
  t.ok(mp.has('/data/workspace'));
  t.ok(mp.has('/mnt/with space'));
  t.notOk(mp.has('/data'));
});
