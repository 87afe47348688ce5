import type { Capability } from '../../../src/agent/capability.js';
import type { Task, TaskContext } from '../../../src/agent/task.js';
import type { Notifier } from '../../../src/app/daemon/notify.js';
import { domainJoinCapability, type DomainJoinDoors } from '../../../src/tasks/domain-join/capability.js';
import { host } from '../../../src/tasks/host/capability.js';
import { imdsGuard } from '../../../src/tasks/imds-guard/capability.js';
import { preflightCapability } from '../../../src/tasks/preflight/capability.js';
import { scheduledEvents } from '../../../src/tasks/scheduled-events/capability.js';
import type { ReadClockOffset } from '../../../src/tasks/preflight/clock-check.js';
import { shareMountCapability, type ShareMountDoors } from '../../../src/tasks/share-mount/capability.js';

/** A notifier that records every message, for sequence assertions. */
export class RecordingNotifier implements Notifier {
  readonly enabled = true;
  readonly messages: Record<string, string>[] = [];
  async notify(fields: Record<string, string>): Promise<void> {
    this.messages.push(fields);
  }
}

/** The doors of the capabilities that reach the domain, the share or the DC's clock. */
export type CapabilityDoors = Partial<DomainJoinDoors & ShareMountDoors & { clockOffset: ReadClockOffset }>;

/**
 * The agent's real capabilities, in their real order, with the given doors
 * replaced; their first-boot work is left out, and `firstBoot` runs instead.
 */
export function testCapabilities(doors: CapabilityDoors, firstBoot: readonly Task[] = []): Capability[] {
  const real = [
    preflightCapability(doors.clockOffset),
    domainJoinCapability(doors),
    imdsGuard,
    shareMountCapability(doors),
    host,
    scheduledEvents,
  ];
  return [
    ...firstBoot.map((task): Capability => ({ id: task.id, firstBoot: { task, needs: () => [] } })),
    ...real.map(({ firstBoot: _, ...rest }) => rest),
  ];
}

/** Doors whose answers a test sets, recording every repair and cleanup call in order. */
export class FakeOps {
  readonly calls: string[] = [];
  share = { mounted: true, responsive: true, reason: '' };
  joined = true;
  remountWorks = false;
  failStep: string | undefined;
  /** Unset: the real removeOwnDnsRecord runs (against the test's fake runner). */
  removeDnsRecord?: (ctx: TaskContext) => Promise<unknown>;

  testJoin = async (_ctx?: TaskContext): Promise<{ ok: boolean; reason: string }> => ({
    ok: this.joined,
    reason: this.joined ? 'joined' : 'trust broken',
  });
  probeShare: ShareMountDoors['probeShare'] = async () => ({ ...this.share, source: '//contosofiles/workspace' });
  shareUsage: ShareMountDoors['shareUsage'] = async () => ({ usedBytes: 10, quotaBytes: 100 });
  clockOffset: ReadClockOffset = async () => ({ offsetMs: 10, source: 'dc1' });
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

  /** These answers as capability doors, read at each call (a test may swap testJoin midway). */
  doors(): CapabilityDoors {
    return {
      testJoin: (ctx) => this.testJoin(ctx),
      probeShare: (ctx, o) => this.probeShare(ctx, o),
      shareUsage: (ctx) => this.shareUsage(ctx),
      clockOffset: (ctx) => this.clockOffset(ctx),
      remountShare: () => this.remountShare(),
      rejoin: () => this.rejoin(),
      restartSssd: () => this.restartSssd(),
      closeHandlesAndUnmount: () => this.closeHandlesAndUnmount(),
      leaveDomain: () => this.leaveDomain(),
      ...(this.removeDnsRecord ? { removeDnsRecord: this.removeDnsRecord } : {}),
    };
  }

  /** The real capabilities over these doors (see testCapabilities). */
  capabilities(firstBoot: readonly Task[] = []): Capability[] {
    return testCapabilities(this.doors(), firstBoot);
  }
}
