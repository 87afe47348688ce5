import type { ShareConfig } from '../../agent/config-schema.js';
import { worldWritableProblem } from '../../agent/config-values.js';
import { configError } from '../../agent/errors.js';

/** How the share is mounted: the three modes of the product. */
export type ShareMode = 'smb-key' | 'smb-kerberos' | 'nfs';

export function shareMode(share: Pick<ShareConfig, 'type' | 'auth'>): ShareMode {
  if (share.type === 'nfs') return 'nfs';
  return share.auth === 'kerberos' ? 'smb-kerberos' : 'smb-key';
}

/** The filesystem type mount(8) gets. */
export function fsType(mode: ShareMode): 'cifs' | 'nfs' {
  return mode === 'nfs' ? 'nfs' : 'cifs';
}

/** Kernel facts that change the options; parsed from `uname -r`. */
export interface KernelFacts {
  major: number;
  minor: number;
}

/** "6.1.0-18-cloud-amd64" → {6, 1}. An unreadable release is taken as recent. */
export function parseKernelRelease(release: string): KernelFacts {
  const m = /^(\d+)\.(\d+)/.exec(release.trim());
  return m ? { major: Number(m[1]), minor: Number(m[2]) } : { major: 99, minor: 0 };
}

const atLeast = (k: KernelFacts, major: number, minor: number): boolean => k.major > major || (k.major === major && k.minor >= minor);

export interface MountOptionInput {
  share: Pick<ShareConfig, 'type' | 'auth' | 'dirMode' | 'fileMode' | 'options'>;
  kernel: KernelFacts;
  /** Numeric ids: names are resolved before rendering, so boot never waits on sssd to mount. */
  uid: number;
  gid: number;
  /** System path of the credentials file (key mode). */
  credentialsFile: string;
  /** The machine account (`NAME$`) whose keytab entry gets root's ticket for a Kerberos mount. */
  machineAccount?: string | undefined;
}

/** "775" or "0775" → "0775": mount.cifs reads the value as octal either way; the leading 0 makes that visible. */
/** The schema refuses world-writable modes; so does the renderer, whatever reached it. */
function checkedMode(key: string, mode: string): string {
  const problem = worldWritableProblem(mode);
  if (problem) throw configError(`${key}: "${mode}" ${problem}`, { reason: 'world-writable-mode' });
  return mode;
}

function octal(mode: string): string {
  return mode.length === 3 ? `0${mode}` : mode;
}

/**
 * The SMB dialect. Azure Files wants 3.1.1 (encryption negotiated with
 * AES-GCM, pre-auth integrity); kernels before 4.17 cannot speak it and
 * would refuse the mount with EINVAL, so they get 3.0, which still
 * encrypts. `share.options: [vers=...]` overrides either.
 */
export function smbDialect(kernel: KernelFacts): string {
  return atLeast(kernel, 4, 17) ? '3.1.1' : '3.0';
}

/** Options Microsoft recommends for every SMB mount of Azure Files (storage-how-to-use-files-linux). */
const SMB_COMMON = ['serverino', 'nosharesock', 'actimeo=30', 'mfsymlinks'];
/** Boot must never wait on the share: a network mount (after network-online) that is wanted, not required. */
const NON_BLOCKING = ['_netdev', 'nofail'];

/**
 * The mount options for a mode, in a stable order (the rendered unit is
 * compared byte for byte to decide whether anything changed). Never a key:
 * key mode names the root-only credentials file instead.
 */
export function mountOptions(input: MountOptionInput): string[] {
  const mode = shareMode(input.share);
  let base: string[];
  if (mode === 'smb-key') {
    base = [
      `vers=${smbDialect(input.kernel)}`,
      `credentials=${input.credentialsFile}`,
      // Azure Files has no Unix owners: every file shows as uid/gid with these
      // modes. 0777 (the usual copy-paste) would let any local user change
      // anyone's notebooks; the defaults are 0775/0664 and owner/group are set.
      `uid=${input.uid}`,
      `gid=${input.gid}`,
      `dir_mode=${octal(checkedMode('share.dirMode', input.share.dirMode))}`,
      `file_mode=${octal(checkedMode('share.fileMode', input.share.fileMode))}`,
      ...SMB_COMMON,
      ...NON_BLOCKING,
    ];
  } else if (mode === 'smb-kerberos') {
    base = [
      `vers=${smbDialect(input.kernel)}`,
      // multiuser: each local user gets their own SMB session from their own
      // ticket, so the server's ACLs decide (it implies noperm). cruid=0: the
      // mount's own session uses root's cache, which cifs.upcall fills from
      // the machine keytab for `username=NAME$`.
      'sec=krb5',
      'multiuser',
      'cruid=0',
      ...(input.machineAccount ? [`username=${input.machineAccount}`] : []),
      ...SMB_COMMON,
      ...NON_BLOCKING,
    ];
  } else {
    base = [
      'vers=4',
      'minorversion=1',
      'sec=sys',
      // nconnect (several TCP connections) exists from kernel 5.3.
      ...(atLeast(input.kernel, 5, 3) ? ['nconnect=4'] : []),
      'rsize=1048576',
      'wsize=1048576',
      'actimeo=30',
      // Below 5.18 the client reuses a privileged source port after a
      // reconnect, which Azure's NFS front end can refuse for minutes.
      ...(atLeast(input.kernel, 5, 18) ? [] : ['noresvport']),
      ...NON_BLOCKING,
    ];
  }
  return mergeOptions(base, input.share.options);
}

const keyOf = (o: string): string => o.split('=')[0] ?? o;

/** `share.options` win over ours by key (vers=3.0 replaces vers=3.1.1); new ones are appended. */
export function mergeOptions(base: readonly string[], extra: readonly string[]): string[] {
  const out = [...base];
  for (const o of extra) {
    const i = out.findIndex((b) => keyOf(b) === keyOf(o));
    if (i >= 0) out[i] = o;
    else out.push(o);
  }
  for (const o of out) {
    // One option with "," would split into several; "%" would be a systemd specifier.
    if (/[,\s%"\\]/.test(o))
      throw configError(`share.options: "${o}" cannot be used in a mount option list`, {
        fix: 'remove commas, spaces, quotes, "%" and "\\" from it',
      });
  }
  return out;
}
