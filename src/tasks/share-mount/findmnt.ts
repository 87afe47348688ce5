import type { ShareConfig } from '../../agent/config-schema.js';
import { sameSource } from './endpoint.js';

/** One mounted filesystem, from `findmnt -J -l` or /proc/self/mountinfo. */
export interface MountEntry {
  target: string;
  source: string;
  fstype: string;
  options: string;
}

/** The findmnt call whose output {@link parseFindmnt} reads: the whole table, flat, no path argument (so findmnt never stats the share). */
export const FINDMNT_ARGS = ['-J', '-l', '-o', 'TARGET,SOURCE,FSTYPE,OPTIONS'] as const;

/** Parse `findmnt -J` output (flat with -l; nested `children` are flattened too). */
export function parseFindmnt(json: string): MountEntry[] {
  const data = JSON.parse(json) as { filesystems?: unknown };
  const out: MountEntry[] = [];
  const walk = (list: unknown): void => {
    if (!Array.isArray(list)) return;
    for (const e of list as Array<Record<string, unknown>>) {
      out.push({
        target: String(e.target ?? ''),
        source: String(e.source ?? ''),
        fstype: String(e.fstype ?? ''),
        options: String(e.options ?? ''),
      });
      walk(e.children);
    }
  };
  walk(data.filesystems);
  return out;
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
const unescapeMountinfo = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** Parse /proc/self/mountinfo (proc(5)): "ID PARENT MAJ:MIN ROOT TARGET OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS". */
export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    const dash = fields.indexOf('-', 6);
    if (fields.length < 10 || dash < 0) continue;
    out.push({
      target: unescapeMountinfo(fields[4] ?? ''),
      source: unescapeMountinfo(fields[dash + 2] ?? ''),
      fstype: fields[dash + 1] ?? '',
      options: `${fields[5] ?? ''},${fields[dash + 3] ?? ''}`,
    });
  }
  return out;
}

/** What is at the mount point, and what that means for the task. */
export type MountDecision =
  /** Our share is mounted there: nothing to do. */
  | { state: 'mounted'; entry: MountEntry; automount: boolean }
  /** Only systemd's autofs trigger is there: the share mounts on first access. */
  | { state: 'automount-armed'; entry: MountEntry }
  /** Something else is mounted there: never mount over it. */
  | { state: 'other'; entry: MountEntry }
  | { state: 'not-mounted' };

const SHARE_FSTYPES: Record<ShareConfig['type'], string[]> = { smb: ['cifs', 'smb3'], nfs: ['nfs4', 'nfs'] };

/** systemd's automount trigger shows as an autofs mount from "systemd-1". */
export function isAutomountTrigger(e: MountEntry): boolean {
  return e.fstype === 'autofs' && e.source === 'systemd-1';
}

/**
 * Decide from the mount table. Entries stack (autofs trigger below, share
 * on top); the last one at the target is what a process sees there.
 */
export function decideMount(
  entries: readonly MountEntry[],
  wanted: { target: string; source: string; type: ShareConfig['type'] },
): MountDecision {
  const target = wanted.target.replace(/\/+$/, '') || '/';
  const here = entries.filter((e) => e.target === target);
  const top = here.at(-1);
  if (!top) return { state: 'not-mounted' };
  const ours = (e: MountEntry): boolean =>
    SHARE_FSTYPES[wanted.type].includes(e.fstype) && sameSource(e.source, wanted.source, wanted.type);
  if (ours(top)) return { state: 'mounted', entry: top, automount: here.some(isAutomountTrigger) };
  if (isAutomountTrigger(top)) return { state: 'automount-armed', entry: top };
  return { state: 'other', entry: top };
}
