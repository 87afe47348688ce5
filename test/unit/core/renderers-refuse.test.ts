/**
 * Defence in depth (issue 15, defect 5): every renderer that writes a config
 * value into a file refuses what that file cannot express, even when the
 * value did not come through the schema (a config object built in code, a
 * schema rule lost in a refactor). Each case calls the renderer directly.
 */
import t from 'tap';
import type { Config } from '../../../src/agent/config-schema.js';
import { makePaths } from '../../../src/agent/paths.js';
import { renderSssdConf, renderSudoers, joinFacts } from '../../../src/tasks/domain-join/render.js';
import { mountOptions } from '../../../src/tasks/share-mount/options.js';
import { escapeUnitPath } from '../../../src/tasks/share-mount/units.js';
import { planUserLinks } from '../../../src/tasks/workspace/plan.js';
import { testConfig } from '../../helpers/context.js';

const facts = joinFacts('contoso.test', 'DSVM-1');
/** The schema's output with one value forced in, as a renderer would receive it. */
const domain = (over: Partial<Config['domain']>): Config['domain'] => ({ ...testConfig().domain, ...over });

const cases: { name: string; render: () => unknown; message: RegExp }[] = [
  {
    name: 'sssd.conf: newline and section in an allowed group',
    render: () => renderSssdConf(domain({ allowGroups: ['dsvm-users\n[domain/evil]'] }), facts),
    message: /^domain\.allowGroups\[0\]: "dsvm-users\\n\[domain\/evil\]" must not contain a newline/,
  },
  {
    name: 'sssd.conf: comma in a sudo group (one more allowed group)',
    render: () => renderSssdConf(domain({ allowGroups: ['dsvm-users'], sudoGroups: ['admins, domain users'] }), facts),
    message: /^domain\.sudoGroups\[0\]: "admins, domain users" must not contain ","/,
  },
  {
    name: 'sssd.conf: newline in the shell',
    render: () => renderSssdConf(domain({ shell: '/bin/bash\nsimple_allow_users = mallory' }), facts),
    message: /^domain\.shell: .* must not contain a newline/,
  },
  {
    name: 'sudoers: newline in a sudo group',
    render: () => renderSudoers(domain({ sudoGroups: ['admins\nALL ALL=(ALL) NOPASSWD: ALL'] }), facts),
    message: /^domain\.sudoGroups\[0\]: .* must not contain a newline/,
  },
  { name: 'mount unit for /', render: () => escapeUnitPath('/'), message: /^share\.mountPoint: "\/" must not be \/ itself/ },
  {
    name: 'mount unit for /home/',
    render: () => escapeUnitPath('/home/'),
    message: /^share\.mountPoint: "\/home\/" must not be \/home itself/,
  },
  { name: 'mount unit in /etc', render: () => escapeUnitPath('/etc/ws'), message: /^share\.mountPoint: "\/etc\/ws" must not be in \/etc/ },
  {
    name: 'mount options with dir_mode 0777',
    render: () =>
      mountOptions({
        share: { type: 'smb', auth: 'key', dirMode: '0777', fileMode: '0664', options: [] },
        kernel: { major: 6, minor: 1 },
        uid: 0,
        gid: 0,
        credentialsFile: '/etc/smbcredentials/x.cred',
      }),
    message: /^share\.dirMode: "0777" must not be world-writable/,
  },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    t.throws(c.render, { name: 'AgentError', kind: 'config' });
    try {
      c.render();
    } catch (err) {
      t.match((err as Error).message, c.message);
    }
  });
}

t.test('a workspace root on a system directory plans nothing', async (t) => {
  const account = { name: 'alice', uid: 70001, gid: 70001, home: '/home/alice' };
  for (const root of ['/etc', '/usr/share/ws', '/home', '/']) {
    // Past the schema (which refuses it): the plan's own check is what is under test.
    const cfg = testConfig();
    cfg.workspace.root = root;
    const plan = planUserLinks(account, cfg, makePaths('/'));
    t.match(plan, { ok: false, reason: 'bad-root', message: /^workspace\.root .* must not be/ }, root);
  }
  t.notOk('ok' in planUserLinks(account, testConfig(), makePaths('/')), 'the default root plans');
});

t.test('the renderers still render good values', async (t) => {
  const good = domain({ allowGroups: ['dsvm-users'], sudoGroups: ['AAD DC Administrators'] });
  t.match(renderSssdConf(good, facts), /simple_allow_groups = dsvm-users, AAD DC Administrators\n/);
  t.match(renderSudoers(good, facts) ?? '', /%aad\\ dc\\ administrators ALL=\(ALL:ALL\) ALL/);
  t.equal(escapeUnitPath('/data/workspace'), 'data-workspace');
});
