import { createHash } from 'node:crypto';

/**
 * Computer names: NetBIOS allows 15 characters, and AD's sAMAccountName
 * (NAME$) follows it. realmd and Windows truncate longer names silently,
 * which is how whole scale sets end up sharing one computer account. The
 * agent never truncates silently: a name that does not fit keeps a readable
 * head and gets a short hash of the WHOLE source name, so two long names
 * that share a prefix still differ. The rule is documented in
 * docs/domain-join.md and unit-tested as a table.
 */
export const MAX_COMPUTER_NAME = 15;
const HASH_LEN = 4;

/** Upper-case base-36 digest of `text`, `len` characters. */
export function shortHash(text: string, len: number): string {
  const digest = createHash('sha256').update(text).digest();
  return BigInt(`0x${digest.subarray(0, 8).toString('hex')}`)
    .toString(36)
    .toUpperCase()
    .padStart(len, '0')
    .slice(-len);
}

/** Letters, digits and "-" only, upper case, no leading/trailing/double "-". */
export function sanitizeName(text: string): string {
  const s = text
    .toUpperCase()
    .replace(/[^A-Z0-9-]+/g, '-')
    .replace(/-{2,}/g, '-')
    .replace(/^-+|-+$/g, '');
  if (s === '') return 'DSVM';
  // AD rejects all-digit computer names.
  return /^[0-9]+$/.test(s) ? `DSVM-${s}` : s;
}

/**
 * `base + suffix` when it fits in 15 characters; otherwise the head of
 * `base`, a 4-character hash of all of `base`, then `suffix` (kept whole,
 * because it is what tells instances apart).
 */
export function fitName(base: string, suffix = ''): { name: string; shortened: boolean } {
  if (base.length + suffix.length <= MAX_COMPUTER_NAME) return { name: base + suffix, shortened: false };
  const keep = Math.max(1, MAX_COMPUTER_NAME - suffix.length - HASH_LEN);
  const head = base.slice(0, keep).replace(/-+$/, '');
  return { name: head + shortHash(base, HASH_LEN) + suffix, shortened: true };
}

export interface NameSources {
  /** domain.computerName ("auto" or an explicit, schema-validated name). */
  configured: string;
  /** IMDS compute.vmScaleSetName ("" when not in a scale set). */
  vmScaleSetName?: string;
  /** IMDS compute.name: "<vmss>_<instanceId>" for scale-set VMs. */
  vmName?: string;
  /** The OS host name (cloud-init sets it from the VM's computerName). */
  hostname: string;
}

export interface NameChoice {
  /** The primary name to try. */
  name: string;
  source: 'explicit' | 'vmss' | 'hostname';
  /** The text the name was derived from (for logs and alternates). */
  from: string;
  shortened: boolean;
}

/**
 * A scale-set instance id as a short suffix: uniform scale sets number
 * instances (0, 1, ... → base 36), flexible ones use 8 hex digits
 * (→ the same 32-bit number in base 36, at most 7 characters).
 */
export function instanceSuffix(instanceId: string): string | undefined {
  if (/^[0-9]{1,15}$/.test(instanceId)) return Number(instanceId).toString(36).toUpperCase();
  if (/^[0-9a-f]{8}$/i.test(instanceId)) return parseInt(instanceId, 16).toString(36).toUpperCase();
  return undefined;
}

/** The primary computer name for this VM. */
export function primaryComputerName(src: NameSources): NameChoice {
  if (src.configured !== 'auto') {
    return { name: src.configured.toUpperCase(), source: 'explicit', from: src.configured, shortened: false };
  }
  const vmss = src.vmScaleSetName ?? '';
  const vmName = src.vmName ?? '';
  if (vmss !== '' && vmName.toLowerCase().startsWith(`${vmss.toLowerCase()}_`)) {
    const suffix = instanceSuffix(vmName.slice(vmss.length + 1));
    if (suffix !== undefined) {
      const { name, shortened } = fitName(sanitizeName(vmss), `-${suffix}`);
      return { name, source: 'vmss', from: vmName, shortened };
    }
  }
  const label = src.hostname.split('.')[0] ?? src.hostname;
  const { name, shortened } = fitName(sanitizeName(label));
  return { name, source: 'hostname', from: label, shortened };
}

/**
 * The k-th alternate (k >= 1) when the primary name is held by another live
 * VM: the first 11 characters of the primary, "-", and 3 characters derived
 * from this VM's id and k. Deterministic, so a re-run picks the same name.
 */
export function alternateComputerName(primary: string, vmId: string, k: number): string {
  const head = primary.slice(0, MAX_COMPUTER_NAME - 4).replace(/-+$/, '');
  return `${head}-${shortHash(`${vmId.toLowerCase()}/${k}`, 3)}`;
}

/** The marker the agent writes into its computer object's description. */
export function vmIdStamp(vmId: string): string {
  return `dsvm-agent vmId=${vmId.toLowerCase()}`;
}

/** The VM id in a description written by {@link vmIdStamp}, if any. */
export function stampedVmId(description: string | undefined): string | undefined {
  const m = /\bdsvm-agent vmId=([0-9a-z-]{8,64})\b/i.exec(description ?? '');
  return m?.[1]?.toLowerCase();
}

/**
 * A computer object untouched for longer than this is no longer used by a
 * live machine: sssd changes the machine password every 30 days
 * (ad_maximum_machine_account_password_age) and lastLogonTimestamp may lag
 * up to 14 days (ms-DS-Logon-Time-Sync-Interval), plus a day of margin.
 */
export const STALE_AFTER_MS = 45 * 24 * 3600_000;

/** What the directory says about an existing computer object. */
export interface ExistingComputer {
  description?: string;
  /** When the machine password was last set (ms). */
  pwdLastSet?: number;
  /** Last logon as replicated (ms). */
  lastLogon?: number;
}

export type Verdict =
  | { use: true; why: 'free' | 'ours' | 'stale' | 'explicit' }
  | { use: false; why: 'in-use'; holder: string; lastActiveMs: number | undefined };

/**
 * May this VM take the name? Free names and names stamped with this VM's id
 * are used. A name stamped with another VM id (or not stamped: created by
 * something else) is only taken over when the object has been idle longer
 * than {@link STALE_AFTER_MS}; otherwise another live machine holds it. An
 * explicit name is the administrator's choice: an unstamped object is used,
 * a live one stamped by another VM is not.
 */
export function judgeExisting(existing: ExistingComputer | undefined, vmId: string, nowMs: number, explicit: boolean): Verdict {
  if (!existing) return { use: true, why: 'free' };
  const holder = stampedVmId(existing.description);
  if (holder === vmId.toLowerCase()) return { use: true, why: 'ours' };
  if (holder === undefined && explicit) return { use: true, why: 'explicit' };
  const activity = [existing.pwdLastSet, existing.lastLogon].filter((v): v is number => typeof v === 'number' && v > 0);
  const lastActiveMs = activity.length ? Math.max(...activity) : undefined;
  if (lastActiveMs !== undefined && nowMs - lastActiveMs > STALE_AFTER_MS) return { use: true, why: 'stale' };
  return { use: false, why: 'in-use', holder: holder ?? 'an account not created by dsvm-agent', lastActiveMs };
}

/** How many alternates to try before giving up (each costs one LDAP read). */
export const MAX_ALTERNATES = 5;

/** The candidate names in the order they are tried. */
export function candidateNames(primary: NameChoice, vmId: string): string[] {
  if (primary.source === 'explicit') return [primary.name];
  const out = [primary.name];
  for (let k = 1; k <= MAX_ALTERNATES; k++) out.push(alternateComputerName(primary.name, vmId, k));
  return out;
}
