/**
 * The DC down after the join: samba stopped in the DC's namespace for 10
 * minutes (60 s in the short version), then started again. The VM was
 * provisioned by the agent (its sssd.conf caches credentials) and alice
 * logged in once while the DC answered. During the outage alice logs in
 * again and again through the real PAM stack (pam_sss) and `id alice`
 * resolves; the daemon's health degrades; once the DC is back, health
 * recovers by itself, with no rejoin (the keytab is the one from before).
 */
import t from 'tap';
import { clientExec, describeResult, lab, readLabSecret } from '../lab/harness.js';
import { checkIs, fastChecks, health, VmDaemon, waitHealth } from './daemon-client.js';
import { bringUp, must, provision, sh, type FaultVm, faultFile } from './fault-client.js';
import { rowsFor, SHORT } from './rows.js';

const VM: FaultVm = { client: 'f5', ip: '10.77.0.235', hostname: 'dsvm-fault-dc' };
const OUTAGE_MS = SHORT ? 60_000 : 10 * 60_000;
const LOGIN_EVERY_MS = SHORT ? 10_000 : 30_000;
const PAM = 'dsvm-fault-dc';

faultFile(VM, (cleanup) => {
  const rows = rowsFor(import.meta.filename);
  const daemon = new VmDaemon(VM);
  let dcDown = false;
  cleanup(async () => {
    if (dcDown) await lab(['dc-start'], { timeoutMs: 120_000 });
  });
  cleanup(() => daemon.stop());

  /** alice through pam_sss (authenticate + account); ms and whether it passed. */
  const login = async (): Promise<{ ok: boolean; ms: number; out: string }> => {
    const t0 = Date.now();
    const r = await clientExec(VM.client, ['pamtester', PAM, 'alice', 'authenticate', 'acct_mgmt'], {
      input: `${readLabSecret('passwords/alice')}\n`,
      timeoutMs: 60_000,
    });
    return { ok: r.exitCode === 0, ms: Date.now() - t0, out: (r.stdout + r.stderr).trim() };
  };

  t.test(`DC down ${OUTAGE_MS / 60_000} min after the join`, async (t) => {
    const scenario = `DC down ${OUTAGE_MS / 60_000} min after the join${SHORT ? ' (short version; the full one: 10 min)' : ''}`;
    const expected =
      'cached logins keep working (sssd cache) and id resolves; health degrades, then recovers by itself once the DC is back; no rejoin';
    await rows.guard(scenario, expected, async () => {
      await bringUp(VM, { extra: fastChecks({ repair: true }) });
      const p = await provision(VM);
      t.equal(p.r.exitCode, 0, describeResult('provision', p.r));
      await must('pam service', sh(VM, `printf 'auth required pam_sss.so\\naccount required pam_sss.so\\n' >/etc/pam.d/${PAM}`));
      const online = await login();
      t.ok(online.ok, `alice logs in while the DC answers (${online.ms} ms): ${online.out}`);
      await daemon.start();
      t.ok(
        (await waitHealth(VM, `b.ApplicationHealthState === 'Healthy' && ${checkIs('domain-trust', 'ok')}`, 60_000)) >= 0,
        'Healthy before',
      );
      const keytab = async () => (await must('keytab', sh(VM, 'sha256sum /etc/krb5.keytab'))).split(' ')[0];
      const keytabBefore = await keytab();

      const stop = await lab(['dc-stop'], { timeoutMs: 120_000 });
      t.equal(stop.exitCode, 0, describeResult('dc-stop', stop));
      dcDown = true;
      const down0 = Date.now();
      const degradeMs = await waitHealth(VM, `b.ApplicationHealthState !== 'Healthy'`, 60_000);
      t.ok(degradeMs >= 0, `health degraded after ${degradeMs} ms`);
      const degraded = await health(VM);
      t.comment(`during: ${degraded.ApplicationHealthState}: ${String(degraded.reason)}`);
      const logins: Array<{ ok: boolean; ms: number; out: string }> = [];
      let idFails = 0;
      while (Date.now() - down0 < OUTAGE_MS) {
        logins.push(await login());
        if ((await clientExec(VM.client, ['id', 'alice'])).exitCode !== 0) idFails++;
        await new Promise((r) => setTimeout(r, Math.max(0, Math.min(LOGIN_EVERY_MS, OUTAGE_MS - (Date.now() - down0)))));
      }
      const stateDuring = (await health(VM)).ApplicationHealthState;
      const start = await lab(['dc-start'], { timeoutMs: 120_000 });
      t.equal(start.exitCode, 0, describeResult('dc-start', start));
      dcDown = false;
      const back0 = Date.now();
      const recoverMs = await waitHealth(VM, `b.ApplicationHealthState === 'Healthy' && ${checkIs('domain-trust', 'ok')}`, 180_000);
      t.ok(recoverMs >= 0, `Healthy again ${recoverMs} ms after the DC came back`);
      const after = await login();
      t.ok(after.ok, `alice logs in once the DC is back: ${after.out}`);
      const failedLogins = logins.filter((l) => !l.ok);
      t.same(
        failedLogins.map((l) => l.out),
        [],
        `every login during the outage passed (${logins.length})`,
      );
      t.equal(idFails, 0, 'id alice resolved every time');
      const keytabAfter = await keytab();
      t.equal(keytabAfter, keytabBefore, 'no rejoin: the keytab is the one from before');
      const ms = logins.map((l) => l.ms).sort((a, b) => a - b);
      const ok =
        online.ok &&
        degradeMs >= 0 &&
        failedLogins.length === 0 &&
        idFails === 0 &&
        recoverMs >= 0 &&
        after.ok &&
        keytabAfter === keytabBefore;
      rows.record({
        scenario,
        expected,
        happened: `${logins.length - failedLogins.length}/${logins.length} logins during the outage passed from the cache, id alice failed ${idFails} times; health ${degraded.ApplicationHealthState} after ${Math.round(degradeMs / 1000)} s ("${String(degraded.reason).slice(0, 160)}"), still ${stateDuring} at the end; Healthy ${Math.round(recoverMs / 1000)} s after the DC was back; ${keytabAfter === keytabBefore ? 'no rejoin' : 'the keytab CHANGED'}`,
        numbers: {
          'outage s': Math.round((back0 - down0) / 1000),
          logins: logins.length,
          'login p50 ms': ms[Math.floor(ms.length / 2)] ?? -1,
          'login max ms': ms.at(-1) ?? -1,
          'degraded after s': Math.round(degradeMs / 1000),
          'recovered after s': Math.round(recoverMs / 1000),
        },
        ok,
      });
    });
  });
});
