// Plan before first boot is recorded done (a new VM, or after deprovision
// removed the state): every task that is not skipped runs at the next
// provision, whatever its check can tell now. After first boot, plan prints
// what each check found, as before. What plan and provision print is redacted.
import t from 'tap';
import { AgentError, permanent, transient } from '../../../src/agent/errors.js';
import { renderPlan } from '../../../src/app/commands/plan.js';
import { renderProvision } from '../../../src/app/commands/provision.js';
import { planTasks, type Task } from '../../../src/agent/task.js';
import { makeTestContext } from '../../helpers/context.js';

const SECRET = 'Plan-Stderr-Secret-31f';

function tasks(): Task[] {
  const apply = async (): Promise<void> => undefined;
  return [
    // Preflight never reports changes: it throws when something is missing.
    { id: 'preflight', description: 'p', check: async () => ({ changes: [], warnings: ['clock offset 70 s'] }), apply },
    {
      id: 'domain-join',
      description: 'j',
      check: async () => {
        throw transient('cannot reach a domain controller of contoso.test');
      },
      apply,
    },
    { id: 'share-mount', description: 's', check: async () => ({ changes: ['write /etc/smbcredentials/contosofiles.cred'] }), apply },
    { id: 'extra', description: 'x', skip: () => 'no share configured', check: async () => ({ changes: [] }), apply },
  ];
}

t.test('first boot not done: every task that runs is pending, with what its check found', async (t) => {
  const { ctx } = await makeTestContext();
  const entries = await planTasks(tasks(), ctx);
  t.same(
    entries.map((e) => [e.id, e.status, 'pending' in e ? e.pending : undefined]),
    [
      ['preflight', 'up-to-date', true],
      ['domain-join', 'unknown', true],
      ['share-mount', 'would-change', true],
      ['extra', 'skipped', undefined],
    ],
  );
  const text = renderPlan(entries, false);
  t.match(text, /^first boot has not completed on this VM: every task runs at the next provision$/m);
  const pending = 'pending \\(first boot not done: runs at next provision\\)';
  t.match(text, new RegExp(`^~ preflight: ${pending}\\n    check: nothing differs now\\n    warning: clock offset 70 s$`, 'm'));
  t.match(text, new RegExp(`^~ domain-join: ${pending}\\n    cannot tell now: cannot reach a domain controller of contoso.test$`, 'm'));
  t.match(text, new RegExp(`^~ share-mount: ${pending}\\n    write /etc/smbcredentials/contosofiles.cred$`, 'm'));
  t.match(text, /^- extra: skipped \(no share configured\)$/m);
  t.notMatch(text, /up to date|cannot tell:/, 'no task looks done or merely unknown');
  t.match(renderPlan(entries, true), /^first boot for this VM id: every task runs$/m);
  t.same(JSON.parse(JSON.stringify(entries))[0], {
    id: 'preflight',
    description: 'p',
    status: 'up-to-date',
    changes: [],
    warnings: ['clock offset 70 s'],
    pending: true,
  });
});

t.test('first boot done: the output says what each check found, as before', async (t) => {
  const { ctx } = await makeTestContext();
  ctx.state.firstBootCompletedAt = '2026-01-01T00:00:00Z';
  const entries = await planTasks(tasks(), ctx);
  t.notOk(
    entries.some((e) => 'pending' in e),
    'no pending field',
  );
  t.equal(
    renderPlan(entries, false),
    [
      '= preflight: up to date',
      '    warning: clock offset 70 s',
      '? domain-join: cannot tell: cannot reach a domain controller of contoso.test',
      '~ share-mount: would change',
      '    write /etc/smbcredentials/contosofiles.cred',
      '- extra: skipped (no share configured)',
      '',
    ].join('\n'),
  );
});

t.test('plan entries are redacted: a check error can carry a child stderr', async (t) => {
  const { ctx } = await makeTestContext();
  ctx.redactor.add(SECRET);
  const apply = async (): Promise<void> => undefined;
  const entries = await planTasks(
    [
      {
        id: 'domain-join',
        description: 'j',
        check: async () => {
          throw permanent(`adcli: bad password ${SECRET}`);
        },
        apply,
      },
      { id: 'share-mount', description: 's', check: async () => ({ changes: [`key ${SECRET}`], warnings: [`w ${SECRET}`] }), apply },
    ],
    ctx,
  );
  const text = JSON.stringify(entries) + renderPlan(entries, false);
  t.notOk(text.includes(SECRET), 'no secret in the plan');
  t.match(text, /adcli: bad password \[redacted\]/);
});

t.test('provision output is redacted, text and JSON', async (t) => {
  const { ctx } = await makeTestContext();
  ctx.redactor.add(SECRET);
  const error = new AgentError('permanent', `adcli join: ${SECRET}`, { fix: `check ${SECRET}` });
  const result = {
    ok: false,
    durationMs: 1200,
    failure: error,
    outcomes: [
      { id: 'preflight', status: 'ok' as const, changed: false, changes: [], attempts: 1, warnings: [] },
      { id: 'domain-join', status: 'failed' as const, error, attempts: 1 },
    ],
  };
  for (const json of [false, true]) {
    const text = renderProvision(result, 'vm-1', { json }, ctx.redactor);
    t.notOk(text.includes(SECRET), `json=${json}: no secret`);
    t.match(text, /adcli join: \[redacted\]/, `json=${json}: the message is still there`);
  }
  t.match(
    renderProvision(result, 'vm-1', {}, ctx.redactor),
    /^= preflight: already in place\n! domain-join: FAILED: .*\n {4}fix: .*\nprovisioning stopped\n$/,
  );
});
