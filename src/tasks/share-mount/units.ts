import type { ShareConfig } from '../../agent/config-schema.js';
import { systemDirProblem } from '../../agent/config-values.js';
import { configError } from '../../agent/errors.js';
import { fsType, type ShareMode } from './options.js';

/*
 * A systemd mount unit the agent owns, not a line in the shared /etc/fstab
 * (why: docs/share.md, Mount unit, not fstab). Options still carry
 * `_netdev,nofail`: systemd reads both from Options= of a native unit too
 * (network mount; remote-fs.target does not wait for it).
 */

/** How long systemd lets mount.cifs / mount.nfs work before failing the unit. */
export const MOUNT_TIMEOUT_SEC = 60;

/**
 * systemd's path escaping (`systemd-escape --path`, unit_name_path_escape):
 * the path is simplified, the outer "/" dropped, inner "/" become "-", and
 * every byte other than [A-Za-z0-9:_.] (or a leading ".") becomes `\xNN`.
 */
export function escapeUnitPath(absolutePath: string): string {
  if (!absolutePath.startsWith('/'))
    throw configError(`share.mountPoint: "${absolutePath}" must be an absolute path`, { fix: 'use a path such as /data/workspace' });
  const parts = absolutePath.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw configError(`share.mountPoint: "${absolutePath}" must not contain ".."`, { fix: 'write the real path' });
  // "/" would render "-.mount", the root file system's own unit; /home or /etc would hide the system.
  const system = systemDirProblem(absolutePath);
  if (system) throw configError(`share.mountPoint: "${absolutePath}" ${system}`, { reason: 'system-mount-point' });
  if (parts.length === 0) return '-';
  const bytes = Buffer.from(parts.join('/'), 'utf8');
  let out = '';
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] as number;
    const c = String.fromCharCode(b);
    if (c === '/') out += '-';
    else if (/[A-Za-z0-9:_]/.test(c) || (c === '.' && i > 0)) out += c;
    else out += `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/** Unit names for the mount point: `data-workspace.mount` (+ `.automount`). */
export function unitNames(mountPoint: string): { mount: string; automount: string } {
  const base = escapeUnitPath(mountPoint);
  return { mount: `${base}.mount`, automount: `${base}.automount` };
}

/** systemd expands "%" specifiers in unit settings; a literal one is written "%%". */
const unitValue = (s: string): string => s.replace(/%/g, '%%');

export interface UnitInput {
  share: Pick<ShareConfig, 'account' | 'name' | 'mountPoint'>;
  mode: ShareMode;
  source: string;
  options: readonly string[];
}

export interface RenderedUnits {
  /** File name → content, for every unit this mode needs. */
  files: Record<string, string>;
  /** The unit to enable and start: the .mount, or the .automount for Kerberos. */
  entry: string;
  mount: string;
  automount?: string;
}

const HEADER =
  '# Written by dsvm-agent: rewritten by `dsvm-agent provision`, removed by `dsvm-agent deprovision`.\n# It holds no secret: the key, if any, is only in the credentials file.\n';

/** Render the units for this mode. Pure; compared byte for byte with what is on disk. */
export function renderUnits(input: UnitInput): RenderedUnits {
  const names = unitNames(input.share.mountPoint);
  const what = `Azure Files share ${input.share.account}/${input.share.name}`;
  const onDemand = input.mode === 'smb-kerberos';
  const mountUnit = [
    HEADER.trimEnd(),
    '[Unit]',
    `Description=${what} at ${input.share.mountPoint}`,
    'Documentation=man:mount.cifs(8) man:systemd.mount(5)',
    'Wants=network-online.target',
    'After=network-online.target',
    '',
    '[Mount]',
    `What=${unitValue(input.source)}`,
    `Where=${unitValue(input.share.mountPoint)}`,
    `Type=${fsType(input.mode)}`,
    `Options=${unitValue(input.options.join(','))}`,
    `TimeoutSec=${MOUNT_TIMEOUT_SEC}`,
    // A dead server must not hang shutdown or a remount: umount -f aborts
    // the requests still waiting on it.
    'ForceUnmount=yes',
    // On demand, the automount unit is what boot enables; the mount has no [Install].
    ...(onDemand ? [] : ['', '[Install]', 'WantedBy=remote-fs.target']),
    '',
  ].join('\n');
  const files: Record<string, string> = { [names.mount]: mountUnit };
  if (!onDemand) return { files, entry: names.mount, mount: names.mount };
  files[names.automount] = [
    HEADER.trimEnd(),
    '# Kerberos: no ticket exists at boot, so the share is mounted on first access.',
    '[Unit]',
    `Description=${what} at ${input.share.mountPoint}, mounted on first access`,
    'Documentation=man:systemd.automount(5)',
    '',
    '[Automount]',
    `Where=${unitValue(input.share.mountPoint)}`,
    '',
    '[Install]',
    'WantedBy=remote-fs.target',
    '',
  ].join('\n');
  return { files, entry: names.automount, mount: names.mount, automount: names.automount };
}
