import { shownPath, underFirstBootLock, type Capability, type DescribeOptions } from '../../agent/capability.js';
import type { TaskContext } from '../../agent/task.js';
import { removeOwnDnsRecord } from '../scheduled-events/dns-record.js';
import { identityLookupCheck } from './identity-check.js';
import { domainJoinTask, rejoin } from './index.js';
import { SSSD_UNIT, sssdCheck } from './sssd-check.js';
import { testJoin } from './status.js';
import { domainTrustCheck } from './trust-check.js';
import { leaveDomain, undoJoin } from './undo.js';

/** What the domain-join capability does outside its task; tests replace them. */
export interface DomainJoinDoors {
  testJoin(ctx: TaskContext): Promise<{ ok: boolean; reason: string }>;
  rejoin(ctx: TaskContext): Promise<void>;
  restartSssd(ctx: TaskContext): Promise<void>;
  removeDnsRecord(ctx: TaskContext): Promise<unknown>;
  leaveDomain(ctx: TaskContext): Promise<unknown>;
}

const realDoors: DomainJoinDoors = {
  testJoin,
  rejoin,
  restartSssd: (ctx) => ctx.services.restart(SSSD_UNIT),
  removeDnsRecord: removeOwnDnsRecord,
  leaveDomain,
};

/**
 * Remove this VM's DNS record for good: sssd stops first. sssd registers the
 * record again whenever it goes online or sees the network change
 * (dyndns_update), so a record removed while it runs can come back before
 * the account is deleted (seen in the VM test: removed during a Preempt,
 * back seconds later, with no account left to remove it). The account goes
 * next in both callers, after which sssd could not work anyway.
 */
async function removeDnsRecordForGood(ctx: TaskContext, remove: DomainJoinDoors['removeDnsRecord']): Promise<unknown> {
  if (await ctx.services.isActive(SSSD_UNIT)) await ctx.services.stop(SSSD_UNIT);
  return remove(ctx);
}

/** What deprovision says it removes, in the order undoJoin does it. */
function describe(ctx: TaskContext, o: DescribeOptions): string[] {
  const p = ctx.paths;
  const computer = ctx.state.facts.computerName;
  const keytab = shownPath(p, p.krb5Keytab);
  return [
    ...(o.leaveDomain && o.configKnown && ctx.cfg.domain.dnsUpdate
      ? [`remove this VM's DNS record in ${ctx.cfg.domain.name} (sssd registered it: domain.dnsUpdate)`]
      : []),
    ...(o.leaveDomain
      ? [
          `delete the computer account ${computer ?? `in ${keytab}`} from ${o.configKnown ? ctx.cfg.domain.name.toUpperCase() : 'the domain'} (make sure no other VM uses that name)`,
        ]
      : []),
    `remove the domain join${o.configKnown ? ` with ${ctx.cfg.domain.name}` : ''}: ${keytab}, sssd.conf and cache, the agent's krb5, realmd, sudo, sshd, nsswitch and PAM settings`,
  ];
}

/**
 * The domain join: joins on first boot; watches the trust, user look-ups and
 * sssd; restarts sssd or rejoins when they break; on scale-in removes the
 * DNS record (signed with the keytab, so before the account goes) and the
 * computer account.
 */
export function domainJoinCapability(over: Partial<DomainJoinDoors> = {}): Capability {
  const d = { ...realDoors, ...over };
  return {
    id: 'domain-join',
    firstBoot: { task: domainJoinTask, needs: () => ['preflight'] },
    checks: [domainTrustCheck((ctx) => d.testJoin(ctx)), identityLookupCheck, sssdCheck],
    repairs: [
      // A lookup that fails while sssd runs is most often sssd stuck offline, which a restart clears;
      // a broken trust is domain-trust's to fix.
      { action: 'restart-sssd', checks: ['sssd', 'identity-lookup'], run: (ctx) => d.restartSssd(ctx) },
      {
        action: 'rejoin',
        checks: ['domain-trust'],
        run: underFirstBootLock('rejoin', (ctx) => d.rejoin(ctx)),
        trust: (ctx) => d.testJoin(ctx),
      },
    ],
    terminate: [
      // With domain.dnsUpdate off sssd never registered a record: there is none of ours to remove.
      {
        id: 'dns',
        label: 'removing the DNS record',
        run: async (ctx) => (ctx.cfg.domain.dnsUpdate ? removeDnsRecordForGood(ctx, d.removeDnsRecord) : undefined),
      },
      { id: 'domain', label: 'leaving the domain', run: (ctx) => d.leaveDomain(ctx) },
    ],
    deprovision: {
      describe,
      undo: (ctx, o) =>
        undoJoin(ctx, {
          ...o,
          ...(ctx.cfg.domain.dnsUpdate ? { removeDnsRecord: (c: TaskContext) => removeDnsRecordForGood(c, d.removeDnsRecord) } : {}),
        }),
    },
  };
}

export const domainJoin: Capability = domainJoinCapability();
