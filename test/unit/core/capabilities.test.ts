import t from 'tap';
import {
  checksOf,
  daemonServicesOf,
  deprovisionPartsOf,
  firstBootTasksOf,
  loginsOf,
  repairsByCheck,
  terminateStepsOf,
} from '../../../src/agent/capability.js';
import { LoginService } from '../../../src/tasks/workspace/service.js';
import { makeTestContext } from '../../helpers/context.js';
import { capabilities } from '../../../src/app/capabilities.js';

t.test('the manifest list: ids, first-boot order, and the reverse order of clean-up and undo', async (t) => {
  t.equal(new Set(capabilities.map((c) => c.id)).size, capabilities.length, 'capability ids are unique');
  for (const c of capabilities) if (c.firstBoot) t.equal(c.firstBoot.task.id, c.id, `${c.id}: its task carries its id`);
  t.same(
    firstBootTasksOf(capabilities).map((task) => task.id),
    ['preflight', 'domain-join', 'imds-guard', 'share-mount'],
    'first boot in the order of the list',
  );
  t.same(
    terminateStepsOf(capabilities).map((s) => s.id),
    ['share', 'dns', 'domain'],
    'scale-in: the share before the DNS record, the DNS record before the account whose keytab signs its removal',
  );
  t.same(
    deprovisionPartsOf(capabilities).map((p) => p.id),
    ['share-mount', 'imds-guard', 'domain-join'],
    'deprovision: the share before the join it may depend on',
  );
});

t.test('checks and repairs: each check declared once, each repair answers declared checks', async (t) => {
  const checks = checksOf(capabilities).map((c) => c.id);
  t.equal(new Set(checks).size, checks.length, 'check ids are unique');
  const repairs = capabilities.flatMap((c) => c.repairs ?? []);
  for (const r of repairs) for (const id of r.checks) t.ok(checks.includes(id), `${r.action} answers ${id}, a declared check`);
  const answered = repairs.flatMap((r) => r.checks);
  t.equal(new Set(answered).size, answered.length, 'no check is answered by two repairs');
  t.same(Object.fromEntries([...repairsByCheck(capabilities)].map(([id, r]) => [id, r.action])), {
    sssd: 'restart-sssd',
    'identity-lookup': 'restart-sssd',
    'domain-trust': 'rejoin',
    'share-mounted': 'remount-share',
  });
  t.ok(
    repairs.filter((r) => r.trust).every((r) => r.action === 'rejoin'),
    'only the rejoin asks the domain before it starts (it resets the machine password)',
  );
});

t.test('the daemon takes its login service and its services from the list', async (t) => {
  const { ctx } = await makeTestContext();
  t.same(
    daemonServicesOf(capabilities).map((s) => s.id),
    ['scheduled-events'],
    'the Scheduled Events watcher',
  );
  t.equal(
    daemonServicesOf(capabilities)[0]?.skip?.({ ...ctx.cfg, scheduledEvents: { enabled: false, pollSec: 10 } }),
    'scheduledEvents.enabled is false',
  );
  t.ok(loginsOf(capabilities, ctx) instanceof LoginService, "workspace's LoginService");
  t.throws(
    () => loginsOf([...capabilities, { id: 'second', logins: () => ({ handle: async () => 0, finishDeferred: async () => 0 }) }], ctx),
    /one may/,
  );
});
