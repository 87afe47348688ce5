/**
 * The VM's clock 10 minutes off. A network namespace cannot change the clock
 * (time namespaces move only the monotonic and boot clocks), so the agent
 * runs under libfaketime (Debian's faketime: LD_PRELOAD, FAKETIME=-600): its
 * own Date.now() and every child it starts (adcli, kinit) read a clock 10
 * minutes behind, as on a VM whose time sync is broken. The DC's clock is
 * real and is read the way the agent always reads it (LDAP rootDSE
 * currentTime, src/tasks/preflight/ldap-time.ts). Monotonic clocks stay real
 * (FAKETIME_DONT_FAKE_MONOTONIC=1) so timers behave.
 * Expected: first boot stops in preflight with the offset and the fix
 * (time sync), before any join; the clock check (`status`) fails with the
 * same; with the clock right again, provision converges.
 */
import t from 'tap';
import { clientExec, describeResult } from '../lab/harness.js';
import { AGENT, bringUp, CONFIG, provision, seconds, sh, type FaultVm, faultFile } from './fault-client.js';
import { rowsFor } from './rows.js';

const VM: FaultVm = { client: 'f4', ip: '10.77.0.234', hostname: 'dsvm-fault-clock' };
const SKEW_S = 600;
const FAKETIME_ENV = {
  LD_PRELOAD: '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1',
  FAKETIME: `-${SKEW_S}`,
  FAKETIME_DONT_FAKE_MONOTONIC: '1',
};

faultFile(VM, () => {
  const rows = rowsFor(import.meta.filename);

  t.test('clock 10 minutes off', async (t) => {
    const scenario = 'clock 10 minutes behind the DC';
    const expected =
      'first boot stops in preflight naming the offset and the fix (time sync), nothing joined; the clock check fails with the same; once the clock is right, provision converges';
    await rows.guard(scenario, expected, async () => {
      await bringUp(VM);
      const skewed = await clientExec(VM.client, ['date', '-u', '+%s'], { env: FAKETIME_ENV });
      const real = Math.round(Date.now() / 1000);
      const seenSkew = real - Number(skewed.stdout.trim());
      t.ok(Math.abs(seenSkew - SKEW_S) < 5, `the VM's processes read a clock ${seenSkew} s behind`);
      const t0 = Date.now();
      const off = await clientExec(VM.client, [AGENT, '--config', CONFIG, 'provision', '--json'], {
        env: FAKETIME_ENV,
        timeoutMs: 300_000,
      });
      const offMs = Date.now() - t0;
      const out = JSON.parse(off.stdout || '{"tasks":[]}') as {
        tasks: Array<{ id: string; status: string; error?: string; fix?: string; kind?: string }>;
      };
      const pre = out.tasks.find((x) => x.id === 'preflight');
      t.not(off.exitCode, 0, 'provision fails');
      t.equal(pre?.status, 'failed', describeResult('provision with the clock off', off));
      t.match(pre?.error, /clock/i, 'the error is about the clock');
      t.match(pre?.error, /(59\d|60\d)(\.\d)? s|10\.\d min|\b10 min/, `the offset is stated: ${pre?.error}`);
      t.match(pre?.fix, /chrony|time ?sync|ntp/i, `the fix: ${pre?.fix}`);
      t.equal(pre?.kind, 'permanent', 'permanent: not retried for minutes against a DC that will keep refusing');
      const joined = await sh(VM, 'test -e /etc/krb5.keytab && echo keytab || echo none');
      t.equal(joined.stdout.trim(), 'none', 'nothing joined');
      // The clock check as `status` computes it without a daemon (same check the daemon runs).
      const st = await clientExec(VM.client, [AGENT, '--config', CONFIG, 'status', '--json'], { env: FAKETIME_ENV, timeoutMs: 120_000 });
      const body = JSON.parse(st.stdout || '{"checks":[]}') as { checks: Array<{ id: string; state: string; reason: string }> };
      const clock = body.checks.find((c) => c.id === 'clock');
      t.equal(clock?.state, 'fail', `clock check: ${JSON.stringify(clock)}`);
      t.match(clock?.reason, /fix: .*(chrony|timesyncd)/, 'the check names the fix');
      // The fix applied (the clock right again): provision converges.
      const fixed = await provision(VM);
      t.equal(fixed.r.exitCode, 0, describeResult('provision with the clock right', fixed.r));
      const ok =
        off.exitCode !== 0 &&
        pre?.status === 'failed' &&
        /clock/i.test(pre?.error ?? '') &&
        /chrony|time ?sync|ntp/i.test(pre?.fix ?? '') &&
        joined.stdout.trim() === 'none' &&
        clock?.state === 'fail' &&
        fixed.r.exitCode === 0;
      rows.record({
        scenario,
        expected,
        happened: `provision exit ${off.exitCode}, preflight ${pre?.status} (${pre?.kind}): "${(pre?.error ?? '').slice(0, 200)}" fix: "${(pre?.fix ?? '').slice(0, 160)}"; nothing joined; clock check ${clock?.state}: "${(clock?.reason ?? '').slice(0, 160)}"; clock right again: provision exit ${fixed.r.exitCode}`,
        numbers: { 'skew s': seenSkew, 'failed run s': seconds(offMs), 'converged run s': seconds(fixed.ms) },
        ok,
      });
    });
  });
});
