import type { ShareConfig } from '../../agent/config-schema.js';

/**
 * Where the share lives. Sovereign clouds change only the suffix
 * (core.chinacloudapi.cn, core.usgovcloudapi.net); a private endpoint with
 * its own DNS name (or an IP) is given as `share.host`.
 */
export type ShareEndpointInput = Pick<ShareConfig, 'type' | 'account' | 'name' | 'endpointSuffix' | 'host' | 'filesEndpoint'>;

/** The SMB/NFS server name: `share.host`, or `<account>.file.<endpointSuffix>`. */
export function shareHost(share: Pick<ShareConfig, 'account' | 'endpointSuffix' | 'host'>): string {
  return (share.host ?? `${share.account}.file.${share.endpointSuffix}`).toLowerCase();
}

/** SMB UNC in the form mount.cifs and smbclient take: `//host/share`. */
export function smbSource(share: ShareEndpointInput): string {
  return `//${shareHost(share)}/${share.name}`;
}

/** NFS 4.1 export: Azure Files exports `/<account>/<share>`. */
export function nfsSource(share: ShareEndpointInput): string {
  return `${shareHost(share)}:/${share.account}/${share.name}`;
}

/** What mount(8) gets as the source for this share's protocol. */
export function mountSource(share: ShareEndpointInput): string {
  return share.type === 'nfs' ? nfsSource(share) : smbSource(share);
}

/** The TCP port the protocol needs: 445 for SMB, 2049 for NFS. */
export function sharePort(share: Pick<ShareConfig, 'type'>): number {
  return share.type === 'nfs' ? 2049 : 445;
}

/**
 * The Files REST service URL. It defaults to the public name even when
 * `share.host` is set: a private endpoint keeps that name through the
 * privatelink DNS zone, and the TLS certificate is issued only for it, so
 * a custom host or IP would fail the certificate check over https.
 * `share.filesEndpoint` overrides it (path-style URL for a local server).
 */
export function filesServiceUrl(share: ShareEndpointInput): string {
  return (share.filesEndpoint ?? `https://${share.account}.file.${share.endpointSuffix}`).replace(/\/+$/, '');
}

/** The REST URL of the share itself. */
export function shareUrl(share: ShareEndpointInput): string {
  return `${filesServiceUrl(share)}/${share.name}`;
}

/**
 * Compare a mount source the kernel reports with the one we want. SMB names
 * are case-insensitive and the kernel may keep a trailing "/" or use "\";
 * NFS paths are case-sensitive, host names are not.
 */
export function sameSource(found: string, wanted: string, type: ShareConfig['type']): boolean {
  if (type === 'nfs') {
    const split = (s: string): [string, string] => {
      const i = s.indexOf(':');
      return i < 0 ? [s.toLowerCase(), ''] : [s.slice(0, i).toLowerCase(), s.slice(i + 1).replace(/\/+$/, '')];
    };
    const [fh, fp] = split(found);
    const [wh, wp] = split(wanted);
    return fh === wh && fp === wp;
  }
  const norm = (s: string): string => s.replace(/\\/g, '/').replace(/\/+$/, '').toLowerCase();
  return norm(found) === norm(wanted);
}
