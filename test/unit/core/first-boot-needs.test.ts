import t from 'tap';
import { permanent } from '../../../src/agent/errors.js';
import { runFirstBoot } from '../../../src/agent/first-boot.js';
import { StateStore } from '../../../src/agent/state.js';
import type { Task } from '../../../src/agent/task.js';
import { firstBootTasks } from '../../../src/app/capabilities.js';
import { makeTestContext } from '../../helpers/context.js';

const backoff = { initialMs: 1, maxDelayMs: 1, factor: 1, maxAttempts: 1, maxElapsedMs: 100 };
const share = (extra: Record<string, unknown>) => ({
  share: { account: 'contosofiles', name: 'workspace', key: { file: '/etc/dsvm-agent/storage-key' }, ...extra },
});

/**
 * The real first-boot list (order and declared needs), each task's check and
 * apply replaced: domain-join fails its re-check after apply, as on Debian 13
 * before sssd.conf's accepted modes.
 */
function stubbed(applied: string[]): Task[] {
  return firstBootTasks.map((task) => ({
    ...task,
    skip: () => undefined,
    check: async () => ({ changes: applied.includes(task.id) ? [] : [`${task.id} differs`] }),
    apply: async () => {
      if (task.id === 'domain-join')
        throw permanent('still differs after apply: write /etc/sssd/sssd.conf (mode 0640, want 0600)', { reason: 'not-converged' });
      applied.push(task.id);
    },
  }));
}

t.test('a failed join leaves a key-mounted share mounted; a Kerberos one is not run; first boot fails naming the task', async (t) => {
  const cases = [
    { name: 'auth: key, numeric ids', config: share({ auth: 'key', gid: 1999 }), shareRuns: true },
    { name: 'nfs', config: share({ type: 'nfs', key: undefined }), shareRuns: true },
    { name: 'auth: kerberos', config: share({ auth: 'kerberos', key: undefined }), shareRuns: false },
    { name: 'auth: key, group by name (may be a domain group)', config: share({ auth: 'key', gid: 'dsvm-users' }), shareRuns: false },
  ];
  for (const c of cases) {
    const tc = await makeTestContext({ config: c.config });
    const applied: string[] = [];
    const result = await runFirstBoot(tc.ctx, new StateStore(tc.paths.stateFile, tc.log), stubbed(applied), { backoff });
    t.equal(result.ok, false, `${c.name}: first boot failed (provision exits non-zero)`);
    t.same(
      result.outcomes.map((o) => o.status),
      // imds-guard (no group given by name) needs nothing from the join: it runs.
      ['ok', 'failed', 'ok', c.shareRuns ? 'ok' : 'skipped'],
      `${c.name}: statuses`,
    );
    t.equal(applied.includes('share-mount'), c.shareRuns, `${c.name}: share-mount ${c.shareRuns ? 'ran' : 'did not run'}`);
    t.equal(
      result.failure?.message,
      'domain-join failed: still differs after apply: write /etc/sssd/sssd.conf (mode 0640, want 0600)' +
        (c.shareRuns ? '' : '; share-mount not run: needs domain-join (failed)'),
      `${c.name}: what status and /health show names the task and the cause`,
    );
    t.equal(result.failure?.kind, 'permanent', `${c.name}: the failed task's kind decides the exit code`);
    t.equal(tc.ctx.state.firstBootCompletedAt, undefined, `${c.name}: first boot not recorded done`);
  }
});
