/**
 * The disk fills on /var during a state write: a small tmpfs mounted over the
 * client's state folder (/var/lib/dsvm-agent), the files that were there
 * copied in, the rest filled to ENOSPC. `provision` must write the state at
 * its start (firstBootStartedAt, appliedConfig): that write fails half-way.
 * Expected: a clear error naming the file and the fix, no crash (an exit
 * code, no stack trace), the previous state.json byte for byte, no temp file
 * left; with space again, provision converges.
 */
import t from 'tap';
import { describeResult } from '../lab/harness.js';
import { bringUp, must, provision, seconds, sh, STATE, type FaultVm, faultFile } from './fault-client.js';
import { rowsFor } from './rows.js';

const VM: FaultVm = { client: 'f2', ip: '10.77.0.232', hostname: 'dsvm-fault-disk' };
const DIR = '/var/lib/dsvm-agent';

faultFile(VM, (cleanup) => {
  const rows = rowsFor(import.meta.filename);
  cleanup(() => sh(VM, `umount ${DIR} 2>/dev/null || true`));

  t.test('disk full on /var during a state write', async (t) => {
    const scenario = 'disk full on /var during a state write';
    const expected =
      'provision fails with a clear error (file, cause, fix); no crash; the previous state.json intact, no temp file left; converges once there is space';
    await rows.guard(scenario, expected, async () => {
      await bringUp(VM);
      const first = await provision(VM);
      t.equal(first.r.exitCode, 0, describeResult('first provision', first.r));
      const before = await must('read state', sh(VM, `sha256sum ${STATE}; cat ${STATE}`));
      const listing = async (): Promise<string> =>
        (await must('list the state folder', sh(VM, `ls -A ${DIR} | grep -v -x filler || true`))).trim();
      const namesBefore = await listing();
      // The state folder on a 64 KiB tmpfs with what was there, then filled: the next write gets ENOSPC part-way.
      const fill = await must(
        'fill the state folder',
        sh(
          VM,
          `rm -rf /root/state-before && cp -a ${DIR} /root/state-before
mount -t tmpfs -o size=64k,mode=0700 tmpfs ${DIR}
cp -a /root/state-before/. ${DIR}/
dd if=/dev/zero of=${DIR}/filler bs=1k 2>/dev/null || true
df -k --output=size,avail ${DIR} | tail -1`,
        ),
      );
      t.comment(`tmpfs size/avail (KiB): ${fill.trim()}`);
      const full = await provision(VM);
      const after = await must('read state again', sh(VM, `sha256sum ${STATE}; cat ${STATE}`));
      const namesAfter = await listing();
      const left = {
        trim: () =>
          namesAfter
            .split('\n')
            .filter((n) => !namesBefore.split('\n').includes(n))
            .join(' '),
      };
      const text = full.r.stdout + full.r.stderr;
      const clear = /ENOSPC|no space left/i.test(text) && text.includes(DIR);
      const crashed = full.r.signal !== null || /\n\s+at .+:\d+:\d+\)?\n/.test(text) || /Unhandled|TypeError/.test(text);
      t.not(full.r.exitCode, 0, 'provision fails');
      t.ok(clear, `the error names the cause and the file:\n${text.slice(-800)}`);
      t.notOk(crashed, 'no crash: an exit code, no stack trace');
      t.equal(after, before, 'state.json byte for byte as before');
      t.equal(left.trim(), '', 'no temp file left in the state folder');
      const fix = /fix: .+/.exec(text)?.[0] ?? '';
      t.ok(fix, `a fix is given: ${fix}`);
      // Space again: the same command converges.
      await must('free space', sh(VM, `rm -f ${DIR}/filler`));
      const again = await provision(VM);
      t.equal(again.r.exitCode, 0, describeResult('provision with space again', again.r));
      const valid = await must(
        'state parses',
        sh(VM, `node -e 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))' ${STATE} && echo ok`),
      );
      t.equal(valid.trim(), 'ok', 'state.json parses after the converged run');
      const ok = full.r.exitCode !== 0 && clear && !crashed && after === before && left.trim() === '' && again.r.exitCode === 0;
      rows.record({
        scenario,
        expected,
        happened: `provision exit ${full.r.exitCode}: ${(/dsvm-agent: (.+)/.exec(full.r.stderr)?.[1] ?? /"error": "([^"]+)"/.exec(full.r.stdout)?.[1] ?? full.r.stderr.trim().split('\n').at(-1) ?? '').slice(0, 240)}${fix ? ` (${fix.slice(0, 160)})` : ''}; state.json ${after === before ? 'intact' : 'CHANGED'}; ${left.trim() ? `left: ${left.trim()}` : 'no temp file'}; with space: exit ${again.r.exitCode}`,
        numbers: { 'failed run s': seconds(full.ms), 'converged run s': seconds(again.ms), 'tmpfs KiB': 64 },
        ok,
      });
    });
  });
});
