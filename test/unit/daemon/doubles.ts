import type { Notifier } from '../../../src/app/daemon/notify.js';
import type { DaemonOps } from '../../../src/app/daemon/ops.js';
import type { CheckDeps } from '../../../src/tasks/checks/types.js';

/** A notifier that records every message, for sequence assertions. */
export class RecordingNotifier implements Notifier {
  readonly enabled = true;
  readonly messages: Record<string, string>[] = [];
  async notify(fields: Record<string, string>): Promise<void> {
    this.messages.push(fields);
  }
}

/** Daemon ops whose answers a test sets, recording every repair and cleanup call in order. */
export class FakeOps implements DaemonOps {
  readonly calls: string[] = [];
  readonly fallbacks: string[] = [];
  share = { mounted: true, responsive: true, reason: '' };
  joined = true;
  remountWorks = false;
  failStep: string | undefined;

  testJoin: CheckDeps['testJoin'] = async () => ({ ok: this.joined, reason: this.joined ? 'joined' : 'trust broken' });
  probeShare: CheckDeps['probeShare'] = async () => ({ ...this.share, source: '//contosofiles/workspace' });
  shareUsage: CheckDeps['shareUsage'] = async () => ({ usedBytes: 10, quotaBytes: 100 });
  clockOffset: CheckDeps['clockOffset'] = async () => ({ offsetMs: 10, source: 'dc1' });
  async remountShare(): Promise<void> {
    this.calls.push('remountShare');
    if (this.remountWorks) this.share = { mounted: true, responsive: true, reason: '' };
    else throw new Error('mount error(112): Host is down');
  }
  async rejoin(): Promise<void> {
    this.calls.push('rejoin');
  }
  async restartSssd(): Promise<void> {
    this.calls.push('restartSssd');
  }
  async closeHandlesAndUnmount(): Promise<void> {
    this.calls.push('closeHandlesAndUnmount');
    if (this.failStep === 'closeHandlesAndUnmount') throw new Error('umount: target is busy');
  }
  async leaveDomain(): Promise<void> {
    this.calls.push('leaveDomain');
  }
}
