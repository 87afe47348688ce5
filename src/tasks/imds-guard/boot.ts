import path from 'node:path';
import type { Paths } from '../../agent/paths.js';

/**
 * The kernel forgets nftables rules at reboot, and first boot runs once per
 * VM: without a boot-time load the guard would be gone after the first
 * restart. A oneshot unit of our own loads the rule file before the network
 * comes up (so before any login and any notebook), after nftables.service,
 * whose usual /etc/nftables.conf starts with `flush ruleset` and would
 * otherwise wipe our table. It depends on neither the daemon nor the
 * network, so a broken config or a dead DC never leaves IMDS open at boot.
 */
export const GUARD_UNIT = 'dsvm-agent-imds-guard.service';

/** The rule file the unit loads: the same script `apply` loads with `nft -f`. */
export function guardRulesFile(paths: Paths): string {
  return path.join(paths.configDir, 'imds-guard.nft');
}

export const MARK = '# Written by dsvm-agent';

/** The unit file, naming the rule file by its path on the running system. */
export function renderGuardUnit(rulesFileOnSystem: string): string {
  return [
    `${MARK}: loads the IMDS guard (azure.imdsAccess) at boot; dsvm-agent deprovision removes it.`,
    '[Unit]',
    'Description=dsvm-agent: only root and allowed groups reach the Azure Instance Metadata Service',
    'DefaultDependencies=no',
    'After=nftables.service',
    'Before=network-pre.target shutdown.target',
    'Wants=network-pre.target',
    'Conflicts=shutdown.target',
    `ConditionPathExists=${rulesFileOnSystem}`,
    '',
    '[Service]',
    'Type=oneshot',
    'RemainAfterExit=yes',
    `ExecStart=/usr/sbin/nft -f ${rulesFileOnSystem}`,
    '',
    '[Install]',
    'WantedBy=sysinit.target',
    '',
  ].join('\n');
}
