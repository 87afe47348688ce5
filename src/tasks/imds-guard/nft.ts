import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { permanent } from '../../agent/errors.js';
import { summarize, type Runner } from '../../agent/runner.js';
import { GUARD_FAMILY, GUARD_TABLE, parseGuardTable, type GuardTable } from './ruleset.js';

/** What the kernel holds now. `missing-nft`: the nft program is not installed. */
export type GuardListing = { state: 'present'; table: GuardTable } | { state: 'absent' } | { state: 'missing-nft' };

const NFT_TIMEOUT_MS = 15_000;

export const installNftables = {
  fix: 'install nftables (apt-get install nftables; the dsvm-agent package depends on it), or set azure.imdsAccess.restrict: false',
  reason: 'nft-missing',
};

/** `nft -j list table inet dsvm_agent`, read: nft answers ENOENT in words for a table that does not exist. */
export async function listGuard(run: Runner): Promise<GuardListing> {
  const r = await run({ file: 'nft', args: ['-j', 'list', 'table', GUARD_FAMILY, GUARD_TABLE], timeoutMs: NFT_TIMEOUT_MS });
  if (r.startError === 'ENOENT') return { state: 'missing-nft' };
  if (r.exitCode !== 0) {
    if (/No such file or directory/i.test(r.stderr)) return { state: 'absent' };
    throw permanent(`nft list table ${GUARD_FAMILY} ${GUARD_TABLE}: ${summarize(r)}`, {
      fix: 'run it as root (nft needs CAP_NET_ADMIN) and check that the kernel has nf_tables',
      reason: 'nft-failed',
    });
  }
  try {
    return { state: 'present', table: parseGuardTable(r.stdout) };
  } catch (err) {
    throw permanent(`nft -j list table ${GUARD_FAMILY} ${GUARD_TABLE}: unreadable output (${(err as Error).message})`, {
      fix: 'check `nft -j list table inet dsvm_agent` by hand; nftables 0.9 or later prints JSON',
      reason: 'nft-failed',
    });
  }
}

/**
 * Load a script atomically: nft applies the whole file as one transaction or
 * nothing. The script goes through a file in a private directory, not
 * `nft -f -`: nftables 0.9 (Debian 11, Ubuntu 20.04) opens /dev/stdin by
 * path, which fails with ENXIO on the socket a Node child gets as its stdin.
 */
export async function loadGuard(run: Runner, script: string): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'dsvm-agent-nft-'));
  try {
    const file = path.join(dir, 'imds-guard.nft');
    await writeFile(file, script, { mode: 0o600, flag: 'wx' });
    const r = await run({ file: 'nft', args: ['-f', file], timeoutMs: NFT_TIMEOUT_MS });
    if (r.startError === 'ENOENT') throw permanent('nft is not installed: the IMDS guard cannot be loaded', installNftables);
    if (r.exitCode !== 0) {
      throw permanent(`nft -f (the IMDS guard): ${summarize(r)}`, {
        fix: 'check that the kernel has nf_tables with the inet family and REJECT support (nft_reject_inet)',
        reason: 'nft-failed',
      });
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Remove the table; returns whether there was one. No nft, no table: nothing to remove. */
export async function deleteGuard(run: Runner): Promise<boolean> {
  const r = await run({ file: 'nft', args: ['delete', 'table', GUARD_FAMILY, GUARD_TABLE], timeoutMs: NFT_TIMEOUT_MS });
  if (r.startError === 'ENOENT') return false;
  if (r.exitCode === 0) return true;
  if (/No such file or directory/i.test(r.stderr)) return false;
  throw permanent(`nft delete table ${GUARD_FAMILY} ${GUARD_TABLE}: ${summarize(r)}`, {
    fix: 'run it as root; or remove it by hand: nft delete table inet dsvm_agent',
    reason: 'nft-failed',
  });
}
