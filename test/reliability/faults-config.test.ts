/**
 * The config file replaced by garbage while the daemon runs. The daemon
 * applies its config once, at start; it re-reads the file when it changes
 * (stat every 5 s) and on SIGHUP, and reports it (src/app/daemon/config-watch.ts).
 * Expected: the daemon keeps running on the last good config (its checks go
 * on, health unchanged), `/health` and `status` name the bad file with the
 * problem and the fix, a SIGHUP does not end it, and the good file back
 * reads ok again.
 */
import t from 'tap';
import { clientExec, describeResult } from '../lab/harness.js';
import { checkIs, fastChecks, health, VmDaemon, waitHealth } from './daemon-client.js';
import { AGENT, bringUp, CONFIG, must, provision, sh, type FaultVm, faultFile } from './fault-client.js';
import { rowsFor } from './rows.js';

const VM: FaultVm = { client: 'f3', ip: '10.77.0.233', hostname: 'dsvm-fault-config' };
const GARBAGE = 'domain: [\u0001 {{ this is not : yaml\nshare: 42\n';

faultFile(VM, (cleanup) => {
  const rows = rowsFor(import.meta.filename);
  const daemon = new VmDaemon(VM);
  cleanup(() => daemon.stop());

  t.test('config replaced by garbage while the daemon runs', async (t) => {
    const scenario = 'config replaced by garbage while the daemon runs';
    const expected =
      'the daemon keeps the last good config (checks go on, health unchanged); /health and status report the bad file with the problem and the fix; SIGHUP does not end it; the good file back reads ok';
    await rows.guard(scenario, expected, async () => {
      await bringUp(VM, { extra: fastChecks() });
      const p = await provision(VM);
      t.equal(p.r.exitCode, 0, describeResult('provision', p.r));
      await daemon.start();
      t.ok((await waitHealth(VM, `b.ApplicationHealthState === 'Healthy' && ${checkIs('sssd', 'ok')}`, 30_000)) >= 0, 'Healthy before');
      const good = await must('save config', sh(VM, `cat ${CONFIG}`));
      const t0 = Date.now();
      await must('garbage in', sh(VM, `cat >${CONFIG}`, { input: GARBAGE }));
      const seenMs = await waitHealth(VM, `b.config && b.config.state === 'invalid'`, 20_000);
      t.ok(seenMs >= 0, `/health reports the file invalid after ${seenMs} ms (stat every 5 s)`);
      const during = await health(VM);
      const cfgView = during.config as { state: string; reason?: string; file: string } | undefined;
      t.match(cfgView?.reason, /config\.yaml/, 'names the file');
      t.match(cfgView?.reason, /fix: /, 'with the fix');
      t.equal(during.ApplicationHealthState, 'Healthy', 'health unchanged: the VM runs on the last good config');
      const runsBefore = (during.checks as Array<{ id: string; lastRunAt: string }>).find((c) => c.id === 'sssd')?.lastRunAt;
      await new Promise((r) => setTimeout(r, 5000));
      const later = await health(VM);
      const runsAfter = (later.checks as Array<{ id: string; lastRunAt: string }>).find((c) => c.id === 'sssd')?.lastRunAt;
      t.not(runsAfter, runsBefore, `checks go on (sssd last run ${runsBefore} then ${runsAfter})`);
      // status reads no config when the daemon answers: it must work with the garbage on disk.
      const st = await clientExec(VM.client, [AGENT, '--config', CONFIG, 'status']);
      t.equal(st.exitCode, 0, describeResult('status with the garbage on disk', st));
      t.match(st.stdout, /config: INVALID .*config\.yaml/, 'status shows the bad file');
      const stJson = await clientExec(VM.client, [AGENT, '--config', CONFIG, 'status', '--json']);
      const stBody = JSON.parse(stJson.stdout || '{}') as { source?: string; config?: { state: string } };
      t.equal(stBody.config?.state, 'invalid', 'status --json carries it');
      t.equal(stBody.source, 'daemon');
      await daemon.signal('HUP');
      await new Promise((r) => setTimeout(r, 1500));
      const aliveAfterHup = await daemon.alive();
      t.ok(aliveAfterHup, 'SIGHUP re-reads and does not end the daemon');
      // A restart with this file would be refused, naming the key: that is what the report warns of.
      const check = await clientExec(VM.client, [AGENT, 'config', 'check', CONFIG]);
      t.equal(check.exitCode, 2, 'config check: exit 2');
      await must('good config back', sh(VM, `cat >${CONFIG}`, { input: good }));
      const backMs = await waitHealth(VM, `b.config && b.config.state === 'ok'`, 20_000);
      t.ok(backMs >= 0, `ok again after ${backMs} ms`);
      const alive = await daemon.alive();
      const stopMs = await daemon.stop();
      t.ok(stopMs >= 0 && stopMs < 5000, `stops on SIGTERM in ${stopMs} ms`);
      const ok =
        seenMs >= 0 &&
        during.ApplicationHealthState === 'Healthy' &&
        runsAfter !== runsBefore &&
        st.exitCode === 0 &&
        /config: INVALID/.test(st.stdout) &&
        aliveAfterHup &&
        alive &&
        backMs >= 0;
      rows.record({
        scenario,
        expected,
        happened: `daemon alive throughout; /health: ${during.ApplicationHealthState}, config ${cfgView?.state}: "${(cfgView?.reason ?? '').slice(0, 200)}"; status: "${(/config: .*/.exec(st.stdout)?.[0] ?? 'no config line').slice(0, 120)}"; SIGHUP: ${aliveAfterHup ? 'still running' : 'DIED'}; config check exit ${check.exitCode}; good file back: ${backMs >= 0 ? 'ok' : 'not seen'}`,
        numbers: { 'ms to report': seenMs, 'ms to ok again': backMs, 'stop ms': stopMs, 'total s': Math.round((Date.now() - t0) / 1000) },
        ok,
      });
    });
  });
});
