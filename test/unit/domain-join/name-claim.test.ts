/**
 * The same-name race: two VMs that derive one name at the same moment both
 * find it free. The name is claimed on the DC (an atomic LDAP add with the
 * VM's stamp) before `adcli join`, which would otherwise take over the
 * other VM's fresh account. The lab shows the race for real
 * (test/reliability/scale-out.test.ts); here, each way the add can end.
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { runTasks } from '../../../src/agent/task.js';
import type { RunResult } from '../../../src/agent/runner.js';
import type { FakeCommand, FakeRunner } from '../../helpers/fake-runner.js';
import { domainJoinTask } from '../../../src/tasks/domain-join/index.js';
import { alternateComputerName, vmIdStamp } from '../../../src/tasks/domain-join/computer-name.js';
import { askAdcliOnce } from '../../../src/tasks/domain-join/lookup.js';
import { claimComputerName, claimTicket } from '../../../src/tasks/domain-join/naming.js';
import { backoff, caught, OTHER_VM, PASSWORD, primary, setup, type World } from './world.js';

const EXISTS: Partial<RunResult> = { exitCode: 68, stderr: 'ldap_add: Already exists (68)\n\tadditional info: Entry already exists\n' };

/** Answers the claim's LDAP add with `answer`, ahead of the world's own ldapmodify; returns each LDIF. */
function onAdd(runner: FakeRunner, answer: (ldif: string) => Partial<RunResult>): string[] {
  const adds: string[] = [];
  // The fake runner takes the first match and the world registered its ldapmodify first: this one goes in front.
  (runner as unknown as { commands: Array<FakeCommand & { used: number }> }).commands.unshift({
    file: 'ldapmodify',
    args: () => true,
    used: 0,
    result: (req) => {
      if (!/^changetype: add$/m.test(req.input ?? '')) throw new Error(`unexpected LDIF: ${req.input}`);
      adds.push(req.input ?? '');
      return answer(req.input ?? '');
    },
  });
  return adds;
}

t.test('a free name: the object is added with this VM stamp, as adcli would create it, before the join', async (t) => {
  const w: World = { existing: {} };
  const tc = await setup(w);
  const adds = onAdd(tc.runner, () => ({}));
  const out = await runTasks([domainJoinTask], tc.ctx, { backoff });
  t.equal(out[0]?.status, 'ok', JSON.stringify(out[0]));
  t.equal(adds.length, 1, 'one add');
  t.equal(
    adds[0],
    [
      `dn: CN=${primary},OU=DSVM,DC=contoso,DC=test`,
      'changetype: add',
      'objectClass: computer',
      `sAMAccountName: ${primary}$`,
      'userAccountControl: 69632',
      `description: ${vmIdStamp(tc.ctx.state.vmId)}`,
      '',
    ].join('\n'),
  );
  const addAt = tc.runner.calls.findIndex((c) => c.file === 'ldapmodify');
  const joinAt = tc.runner.calls.findIndex((c) => c.file === 'adcli' && c.args?.[0] === 'join' && !c.args.includes('--help'));
  t.ok(addAt >= 0 && addAt < joinAt, 'claimed before adcli join');
  t.notOk(
    tc.runner.calls.some((c) => (c.args ?? []).some((a) => a.includes(PASSWORD))),
    'password in no argv',
  );
  t.equal(w.joinedAs, primary);
});

t.test('the race lost: another VM added the name first; the retry joins under the next name', async (t) => {
  const w: World = { existing: {} };
  const tc = await setup(w);
  // The check found the name free; by the add, the other VM had it (stamped with its id).
  const adds = onAdd(tc.runner, (ldif) => {
    if (!ldif.startsWith(`dn: CN=${primary},`)) return {};
    w.existing[primary] = vmIdStamp(OTHER_VM);
    return EXISTS;
  });
  const out = await runTasks([domainJoinTask], tc.ctx, { backoff });
  t.equal(out[0]?.status, 'ok', JSON.stringify(out[0]));
  t.equal(out[0]?.status === 'ok' && out[0].attempts, 2, 'the first attempt failed transiently, the second joined');
  const alternate = alternateComputerName(primary, tc.ctx.state.vmId, 1);
  t.equal(w.joinedAs, alternate, `joined as ${alternate}, not over the other VM's ${primary}`);
  t.equal(adds.length, 2, 'one add per name tried');
  t.notOk(
    tc.runner.calls.some((c) => c.file === 'adcli' && c.args?.[0] === 'join' && c.args.includes(`--computer-name=${primary}`)),
    'adcli join never ran with the lost name',
  );
  t.ok(
    tc.logLines.some((l) => /computer name .* was taken by 0b6d4f7e/.test(l)),
    'the log says who took it',
  );
});

t.test('the add finds an object: judged by the name rule again', async (t) => {
  for (const c of [
    { name: 'our own, from an interrupted run: go on', stamp: 'self', ok: true },
    { name: 'another live VM: a transient error naming it', stamp: vmIdStamp(OTHER_VM), ok: false },
  ]) {
    const w: World = { existing: {} };
    const tc = await setup(w);
    w.existing[primary] = c.stamp === 'self' ? vmIdStamp(tc.ctx.state.vmId) : c.stamp;
    onAdd(tc.runner, () => EXISTS);
    const ticket = await claimTicket(tc.ctx);
    t.ok(ticket, 'a join account and a DC from the preflight: a ticket for the claim');
    const p = claimComputerName(tc.ctx, primary, askAdcliOnce(tc.ctx), ticket);
    if (c.ok) await t.resolves(p, c.name);
    else {
      const err = await caught(p);
      t.equal(err.kind, 'transient', c.name);
      t.equal(err.reason, 'computer-name-raced');
      t.match(err.message, OTHER_VM);
    }
    await ticket!.close();
    t.notOk(existsSync(path.dirname(ticket!.ccache.replace(/^FILE:/, ''))), 'closed: its directory is gone');
  }
});

t.test('a pre-staged account (one-time password) is not claimed', async (t) => {
  const w: World = { existing: {} };
  const tc = await setup(w, { joinPassword: undefined, joinUser: undefined, oneTimePassword: { file: '/etc/dsvm-agent/join-password' } });
  const adds = onAdd(tc.runner, () => ({}));
  const ticket = await claimTicket(tc.ctx);
  t.equal(ticket, undefined, 'no join account: no ticket');
  await claimComputerName(tc.ctx, primary, askAdcliOnce(tc.ctx), ticket);
  t.same(adds, []);
  t.notOk(
    tc.runner.calls.some((c) => c.file === 'kinit'),
    'no kinit',
  );
});

t.test('no DC from a preflight (a repair rejoins its own name): no ticket, no claim', async (t) => {
  const w: World = { existing: {} };
  const tc = await setup(w, {}, { preflightDc: false });
  t.equal(await claimTicket(tc.ctx), undefined);
});
