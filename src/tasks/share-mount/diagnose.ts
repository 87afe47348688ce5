import net from 'node:net';
import { existsSync } from 'node:fs';
import type { ShareConfig } from '../../agent/config-schema.js';
import { permanent, transient, type AgentError } from '../../agent/errors.js';
import { summarize, type RunResult } from '../../agent/runner.js';
import type { TaskContext } from '../../agent/task.js';
import { shareHost, sharePort } from './endpoint.js';
import type { ShareMode } from './options.js';

/** Outcome of one TCP connect attempt. */
export type TcpOutcome = { ok: true } | { ok: false; why: 'refused' | 'timeout' | 'unreachable' | string };

/** Connects to host:port; injectable so unit tests never open a socket to a made-up host. */
export type TcpProbe = (address: string, port: number, timeoutMs: number) => Promise<TcpOutcome>;

/** A plain TCP connect with a deadline (like `nc -zw3 HOST 445`), closed at once. */
export const tcpProbe: TcpProbe = (address, port, timeoutMs) =>
  new Promise((resolve) => {
    const socket = net.connect({ host: address, port });
    const done = (o: TcpOutcome): void => {
      socket.destroy();
      resolve(o);
    };
    socket.setTimeout(timeoutMs, () => done({ ok: false, why: 'timeout' }));
    socket.once('connect', () => done({ ok: true }));
    socket.once('error', (err: NodeJS.ErrnoException) => {
      const code = err.code ?? err.message;
      done({
        ok: false,
        why: code === 'ECONNREFUSED' ? 'refused' : code === 'EHOSTUNREACH' || code === 'ENETUNREACH' ? 'unreachable' : code,
      });
    });
  });

const DNS_TIMEOUT_MS = 5_000;
export const TCP_TIMEOUT_MS = 3_000;

/**
 * Resolve the share host the way mount.cifs will (getaddrinfo, through
 * nsswitch: /etc/hosts, then DNS), in a child with a deadline.
 */
export async function resolveShareHost(ctx: TaskContext, host: string): Promise<string> {
  if (net.isIP(host)) return host;
  const r = await ctx.run({ file: 'getent', args: ['ahosts', host], timeoutMs: DNS_TIMEOUT_MS });
  const address = r.exitCode === 0 ? r.stdout.split('\n')[0]?.split(/\s+/)[0] : undefined;
  if (address) return address;
  const private_ = /\.file\.core\./.test(host)
    ? ' For a private endpoint, link the privatelink.file.core.windows.net DNS zone to the VNet.'
    : '';
  throw transient(
    `share: the share host ${host} does not resolve${r.timedOut ? ' (DNS timed out)' : r.exitCode === 2 ? '' : `: ${summarize(r)}`}`,
    {
      fix: `check share.account, share.endpointSuffix and share.host, and the VM's DNS.${private_}`,
      reason: 'share-dns',
    },
  );
}

/**
 * The message for an unreachable SMB port. Outbound 445 is blocked by many
 * ISPs, corporate firewalls and NSG rules: it is the most common reason an
 * Azure Files mount fails, so the message says so plainly.
 */
export function portBlockedError(
  share: Pick<ShareConfig, 'type' | 'account' | 'endpointSuffix' | 'host'>,
  address: string,
  why: string,
): AgentError {
  const host = shareHost(share);
  const port = sharePort(share);
  const where = address === host ? host : `${host} (${address})`;
  if (share.type === 'nfs') {
    return transient(`share: TCP 2049 (NFS) on ${where} is not reachable: ${why}`, {
      fix: 'NFS shares are reachable only from the VNet: add a private endpoint or a service endpoint for the storage account on this subnet, and allow outbound TCP 2049 in the NSG',
      reason: 'share-port-blocked',
    });
  }
  return transient(
    `share: TCP ${port} (SMB) on ${where} is not reachable: ${why}. A blocked port 445 is the most common Azure Files failure`,
    {
      fix: `allow outbound TCP 445 to ${host} (NSG rules, Azure Firewall, proxies and ISPs often block it), or reach the account through a private endpoint; test with: nc -zvw3 ${host} 445`,
      reason: 'share-port-blocked',
    },
  );
}

/** DNS, then the protocol's TCP port. */
export async function checkReachable(ctx: TaskContext, probe: TcpProbe): Promise<string> {
  const share = ctx.cfg.share as ShareConfig;
  const address = await resolveShareHost(ctx, shareHost(share));
  const outcome = await probe(address, sharePort(share), TCP_TIMEOUT_MS);
  if (!outcome.ok)
    throw portBlockedError(
      share,
      address,
      outcome.why === 'timeout'
        ? `no answer within ${TCP_TIMEOUT_MS / 1000} s`
        : outcome.why === 'refused'
          ? 'connection refused'
          : outcome.why,
    );
  return address;
}

/** mount.cifs / mount.nfs must exist, or mount(8) fails with a cryptic "wrong fs type". */
export function checkMountHelper(ctx: TaskContext, mode: ShareMode): void {
  if (mode === 'nfs') {
    if (!existsSync(ctx.paths.mountNfsHelper))
      throw permanent('share: mount.nfs is not installed', {
        fix: 'install nfs-common (Debian/Ubuntu) or nfs-utils',
        reason: 'share-helper-missing',
      });
    return;
  }
  if (!existsSync(ctx.paths.mountCifsHelper)) {
    throw permanent('share: mount.cifs is not installed', {
      fix: `install cifs-utils${mode === 'smb-kerberos' ? ' and keyutils' : ''}`,
      reason: 'share-helper-missing',
    });
  }
}

/**
 * Turn a failed mount (mount.cifs/mount.nfs output, directly or from the
 * unit's journal) into an error with the fix. The codes are the errno values
 * mount.cifs prints as "mount error(N)".
 */
export function mountFailure(
  output: string,
  ctx: {
    share: Pick<ShareConfig, 'type' | 'account' | 'name' | 'endpointSuffix' | 'host'>;
    mode: ShareMode;
    source: string;
    mountPoint: string;
  },
): AgentError {
  const text = output.trim().split('\n').filter(Boolean).slice(-4).join(' / ') || 'no output';
  const what = `share: mounting ${ctx.source} at ${ctx.mountPoint} failed: ${text}`;
  const code = /mount error\((\d+)\)/.exec(output)?.[1];
  if (code === '19' || /No such device|unknown filesystem type/i.test(output)) {
    return permanent(`${what}. The kernel has no ${ctx.mode === 'nfs' ? 'NFS' : 'CIFS'} support`, {
      fix:
        ctx.mode === 'nfs'
          ? 'modprobe nfs (install the kernel modules package)'
          : 'modprobe cifs (on Ubuntu install linux-modules-extra-$(uname -r); Azure kernels include it)',
      reason: 'share-kernel-no-cifs',
    });
  }
  // mount.nfs says "access denied by server" (EACCES, no errno printed); cifs.upcall
  // finding no usable Kerberos credentials ends in ENOKEY (126).
  const kerberosNoKey = ctx.mode === 'smb-kerberos' && (code === '126' || /Required key not available/i.test(output));
  if (code === '13' || /Permission denied|access denied by server/i.test(output) || kerberosNoKey) {
    if (ctx.mode === 'smb-key') {
      return permanent(`${what}. The storage account refused the key (authentication failure)`, {
        fix: 'put the current key1/key2 of the account in share.key (it may have been rotated) and run dsvm-agent provision',
        reason: 'share-auth-failed',
      });
    }
    if (ctx.mode === 'smb-kerberos') {
      return permanent(`${what}. Kerberos authentication failed`, {
        fix: 'check that the machine is joined (klist -k), that the storage account is joined to the same AD, and that the clock is in sync',
        reason: 'share-auth-failed',
      });
    }
    return permanent(`${what}. The NFS server refused this client`, {
      fix: "add this VM's subnet to the storage account's network rules (private or service endpoint)",
      reason: 'share-nfs-denied',
    });
  }
  if (code === '2' || /No such file or directory/i.test(output)) {
    return permanent(`${what}. The share does not exist (or the mount point is missing)`, {
      fix: `create file share "${ctx.share.name}" in account "${ctx.share.account}" or correct share.name`,
      reason: 'share-not-found',
    });
  }
  if (code === '95' || /Operation not supported/i.test(output)) {
    return permanent(`${what}. The SMB dialect or encryption was refused`, {
      fix: 'this kernel cannot speak what the account requires: use a kernel with SMB 3.1.1 and AES-GCM, or set share.options: [vers=3.0]',
      reason: 'share-dialect',
    });
  }
  if (code === '112' || code === '113' || code === '101' || code === '110' || /timed out|Host is down|No route|unreachable/i.test(output)) {
    return portBlockedError(ctx.share, shareHost(ctx.share), text);
  }
  return transient(what, {
    fix: `see the mount helper's message above${ctx.mode === 'nfs' ? '' : ' and dmesg (CIFS: VFS lines)'}`,
    reason: 'share-mount-failed',
  });
}

/** The last lines systemd logged for a unit, where mount.cifs's own message ends up. */
export async function unitLog(ctx: TaskContext, unit: string): Promise<string> {
  const r: RunResult = await ctx.run({ file: 'journalctl', args: ['-u', unit, '-n', '15', '--no-pager', '-o', 'cat'], timeoutMs: 10_000 });
  return r.exitCode === 0 ? r.stdout : '';
}
