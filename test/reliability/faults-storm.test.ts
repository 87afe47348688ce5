/**
 * A login storm while the share hangs: smbd of the lab's storage server
 * SIGSTOPped (`lab files-freeze`) under the workspace root. The host kernel
 * has no cifs module, so the client reaches the share through smbnetfs, a
 * FUSE SMB client (libsmbclient) on the same server, account and key: a
 * process that touches the share then waits in the kernel for an answer that
 * does not come, as on a CIFS mount whose server hangs. The daemon runs; each
 * login is the real PAM path (pamtester → pam_exec → `dsvm-agent
 * pam-session` → the daemon's socket), N at once (4 AD users, each several
 * times).
 * Expected: every login returns within workspace.loginTimeoutMs plus the hook's
 * start-up; /health keeps answering; no process is left stuck on the share
 * once the storm is over; the distribution is printed and recorded.
 */
import t from 'tap';
import { describeResult, lab, labEnv, readLabSecret } from '../lab/harness.js';
import { fastChecks, nodeIn, VmDaemon } from './daemon-client.js';
import { AGENT, bringUp, must, provision, sh, type FaultVm, faultFile } from './fault-client.js';
import { rowsFor, SHORT } from './rows.js';

const VM: FaultVm = { client: 'f6', ip: '10.77.0.236', hostname: 'dsvm-fault-storm' };
const LOGIN_TIMEOUT_MS = 3000;
/** pam_exec starts Node for the hook: its start-up on a loaded 2-core machine comes on top of the bound. */
const BOUND_MS = LOGIN_TIMEOUT_MS + 2000;
const USERS = ['alice', 'bob', 'Jean.Dupont', 'dsvmadmin'];
const ROUNDS = SHORT ? 3 : 8;
const SMB = '/mnt/dsvm-storm-smb';
const PAM = 'dsvm-fault-storm';

faultFile(VM, (cleanup) => {
  const rows = rowsFor(import.meta.filename);
  const daemon = new VmDaemon(VM);
  let frozen = false;
  cleanup(async () => {
    if (frozen) await lab(['files-thaw']);
  });
  cleanup(() => daemon.stop());
  cleanup(() => sh(VM, `umount -l ${SMB} 2>/dev/null; kill -KILL "$(cat /run/dsvm-storm-smbnetfs.pid)" 2>/dev/null; true`));

  t.test('login storm while the share hangs', async (t) => {
    const n = USERS.length * ROUNDS;
    const scenario = `login storm (${n} logins at once) while the share hangs (smbd SIGSTOPped)`;
    const expected = `every login returns within ${BOUND_MS} ms (loginTimeoutMs ${LOGIN_TIMEOUT_MS} + the hook's start-up); /health answers throughout; nothing left stuck`;
    await rows.guard(scenario, expected, async () => {
      const env = labEnv();
      const root = `${SMB}/${env.FILES_HOST}/${env.SHARE_NAME}`;
      await bringUp(VM, { extra: [...fastChecks(), `workspace: { root: ${root}, loginTimeoutMs: ${LOGIN_TIMEOUT_MS} }`] });
      // The share through smbnetfs: its credentials in a root-only file, never in argv.
      await must(
        'smbnetfs',
        sh(
          VM,
          `mkdir -p /root/.smb ${SMB}; umask 077; read -r key
printf 'auth "%s" "%s"\\nsmb_timeout 600000\\nuse_libsecret false\\nsmb_query_browsers false\\n' "${env.STORAGE_ACCOUNT}" "$key" >/root/.smb/smbnetfs.conf
printf '[global]\\nclient min protocol = SMB2\\n' >/root/.smb/smb.conf
HOME=/root setsid smbnetfs ${SMB} -f -o config=/root/.smb/smbnetfs.conf,allow_other </dev/null >/dev/null 2>&1 &
echo $! >/run/dsvm-storm-smbnetfs.pid
for i in $(seq 50); do ls ${root} >/dev/null 2>&1 && exit 0; sleep 0.2; done
echo "the share is not readable through smbnetfs" >&2; exit 1`,
          { input: `${readLabSecret('storage-key')}\n`, timeoutMs: 60_000 },
        ),
      );
      const p = await provision(VM);
      t.equal(p.r.exitCode, 0, describeResult('provision', p.r));
      await must(
        'pam service',
        sh(
          VM,
          `printf '%s\\n' 'auth required pam_permit.so' 'account required pam_permit.so' 'session required pam_permit.so' 'session optional pam_exec.so quiet type=open_session ${AGENT} pam-session' >/etc/pam.d/${PAM}`,
        ),
      );
      await daemon.start();
      // One login per user while the share answers: the folders exist, the storm is about the hang alone.
      const warm = await sh(VM, USERS.map((u) => `pamtester ${PAM} '${u}' open_session`).join(' && '), { timeoutMs: 120_000 });
      t.equal(warm.exitCode, 0, describeResult('logins while the share answers', warm));

      const freeze = await lab(['files-freeze']);
      t.equal(freeze.exitCode, 0, describeResult('files-freeze', freeze));
      frozen = true;
      const hung = await sh(VM, `rc=0; timeout -s KILL 3 stat ${root}/alice >/dev/null 2>&1 || rc=$?; echo $rc`);
      t.equal(hung.stdout.trim(), '137', 'the share hangs: a stat is still waiting after 3 s');
      // The storm and a /health prober at once, from inside the VM.
      const storm = await nodeIn(
        VM,
        `import { spawn } from 'node:child_process';
         const users = ${JSON.stringify(USERS)}; const jobs = []; const ms = []; let failed = 0; const health = []; let probing = true;
         const probe = (async () => { while (probing) { const s = performance.now(); try { const r = await fetch('http://127.0.0.1:8642/health', { signal: AbortSignal.timeout(5000) }); await r.text(); health.push(performance.now() - s); } catch { health.push(-1); } await new Promise((r) => setTimeout(r, 200)); } })();
         for (let r = 0; r < ${ROUNDS}; r++) for (const u of users) jobs.push(new Promise((res) => { const s = performance.now(); const c = spawn('pamtester', ['${PAM}', u, 'open_session'], { stdio: 'ignore' }); c.on('close', (code) => { ms.push(performance.now() - s); if (code !== 0) failed++; res(); }); }));
         await Promise.all(jobs); probing = false; await probe;
         console.log(JSON.stringify({ ms, failed, health }));`,
        180_000,
      );
      const out = JSON.parse(storm.stdout || '{"ms":[],"failed":-1,"health":[]}') as { ms: number[]; failed: number; health: number[] };
      const ms = out.ms.sort((a, b) => a - b);
      const q = (f: number): number => Math.round(ms[Math.min(ms.length - 1, Math.floor(ms.length * f))] ?? -1);
      const hist = [1000, 2000, 3000, 4000, 5000, Infinity].map((edge, i, all) => {
        const lo = i === 0 ? 0 : all[i - 1]!;
        return `${lo / 1000}-${edge === Infinity ? '' : edge / 1000}s: ${ms.filter((x) => x >= lo && x < edge).length}`;
      });
      t.comment(`login ms: p50 ${q(0.5)} p90 ${q(0.9)} p99 ${q(0.99)} max ${Math.round(ms.at(-1) ?? -1)}; ${hist.join(', ')}`);
      const slow = ms.filter((x) => x > BOUND_MS);
      t.equal(ms.length, n, `${n} logins returned`);
      t.same(slow, [], `every login within ${BOUND_MS} ms`);
      t.equal(out.failed, 0, 'pamtester succeeded every time (the hook never fails a login)');
      const healthFails = out.health.filter((h) => h < 0).length;
      t.equal(
        healthFails,
        0,
        `/health answered all ${out.health.length} probes during the storm (max ${Math.round(Math.max(...out.health))} ms)`,
      );
      const thaw = await lab(['files-thaw']);
      t.equal(thaw.exitCode, 0, describeResult('files-thaw', thaw));
      frozen = false;
      // Children that touched the share were SIGKILLed at their deadline: none may be left once it answers.
      await new Promise((r) => setTimeout(r, 3000));
      const stuck = await sh(VM, `ps -eo stat=,args= | awk '$1 ~ /D/' | grep -c dsvm || true`);
      const alive = await daemon.alive();
      t.ok(alive, 'the daemon still runs');
      const ok = ms.length === n && slow.length === 0 && out.failed === 0 && healthFails === 0 && alive;
      rows.record({
        scenario,
        expected,
        happened: `${ms.length}/${n} logins returned, ${slow.length} over the bound, ${out.failed} failed; distribution ${hist.join(', ')}; /health ${healthFails ? `failed ${healthFails} of` : 'answered all'} ${out.health.length} probes; daemon ${alive ? 'running' : 'GONE'}; processes in D state after the thaw: ${stuck.stdout.trim()}`,
        numbers: {
          logins: ms.length,
          'p50 ms': q(0.5),
          'p90 ms': q(0.9),
          'p99 ms': q(0.99),
          'max ms': Math.round(ms.at(-1) ?? -1),
          'bound ms': BOUND_MS,
          'health max ms': Math.round(Math.max(...out.health)),
        },
        ok,
      });
    });
  });
});
