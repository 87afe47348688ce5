import t from 'tap';
import { makePaths } from '../../../src/agent/paths.js';
import {
  bothDirectories,
  isAllowed,
  mountPoints,
  parseGroupNames,
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

t.test('isAllowed', async (t) => {
  const cfg = testConfig({ domain: { allowGroups: ['dsvm-users'], sudoGroups: ['DSVM Admins'] } });
  const open = testConfig();
  const cases: { name: string; groups: string[]; cfg: typeof cfg; want: boolean }[] = [
    { name: 'member of an allowed group', groups: ['domain users', 'dsvm-users'], cfg, want: true },
    { name: 'fully qualified group name', groups: ['dsvm-users@contoso.test'], cfg, want: true },
    { name: 'case-insensitive', groups: ['DSVM-Users'], cfg, want: true },
    { name: 'sudo group may log in too', groups: ['dsvm admins@contoso.test'], cfg, want: true },
    { name: 'in no allowed group', groups: ['domain users'], cfg, want: false },
    { name: 'no allowGroups: everyone', groups: ['domain users'], cfg: open, want: true },
  ];
  for (const c of cases) t.equal(isAllowed(c.groups, c.cfg), c.want, c.name);
  t.same(parseGroupNames('alice dsvm-users\n'), ['alice', 'dsvm-users']);
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
