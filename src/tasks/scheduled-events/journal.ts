import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { readIfExists, writeFileAtomic } from '../../agent/fsutil.js';

/**
 * What the scale-in clean-up has done, per EventId, in its own file next to
 * state.json (`/var/lib/dsvm-agent/scheduled-events.json`): a daemon
 * restarted mid-clean-up (OOM, watchdog, an admin's restart) skips the steps
 * already done and approves once; an event approved before is never handled
 * again, though IMDS keeps listing it as Started until the VM is gone.
 *
 * A file of its own, not a key of state.json: the daemon writes state.json
 * from first boot and repairs at any moment, and two writers of one file
 * would undo each other's changes. Never a secret in it.
 */
export const JOURNAL_FILE = 'scheduled-events.json';

/** Keep the newest entries only: a VM sees a handful of events in its life. */
const MAX_ENTRIES = 50;

export type StepOutcome = 'done' | 'failed';

export interface JournalEntry {
  eventType: string;
  firstSeenAt: string;
  /** Step id → its last outcome; a 'done' step is skipped on resume. */
  steps: Record<string, StepOutcome>;
  approvedAt?: string;
  cleanupOk?: boolean;
}

export interface Journal {
  version: 1;
  events: Record<string, JournalEntry>;
}

export function emptyJournal(): Journal {
  return { version: 1, events: {} };
}

/** Pure: parse the file; anything unreadable is an empty journal (the clean-up is idempotent, so redoing a step is safe). */
export function parseJournal(text: string | undefined): Journal {
  if (!text) return emptyJournal();
  try {
    const j = JSON.parse(text) as Journal;
    if (j?.version !== 1 || typeof j.events !== 'object' || j.events === null) return emptyJournal();
    return j;
  } catch {
    return emptyJournal();
  }
}

/** Pure: drop the oldest entries beyond MAX_ENTRIES. */
export function trimJournal(j: Journal, max = MAX_ENTRIES): Journal {
  const ids = Object.keys(j.events).sort((a, b) => (j.events[a]!.firstSeenAt < j.events[b]!.firstSeenAt ? -1 : 1));
  const keep = ids.slice(Math.max(0, ids.length - max));
  return { version: 1, events: Object.fromEntries(keep.map((id) => [id, j.events[id]!])) };
}

/** The journal on disk; each change is written atomically before the next step starts. */
export class JournalStore {
  private readonly file: string;
  constructor(stateDir: string) {
    this.file = path.join(stateDir, JOURNAL_FILE);
  }

  async read(): Promise<Journal> {
    return parseJournal(await readIfExists(this.file));
  }

  async update(change: (j: Journal) => void): Promise<Journal> {
    const j = await this.read();
    change(j);
    const next = trimJournal(j);
    await mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
    await writeFileAtomic(this.file, `${JSON.stringify(next, null, 2)}\n`, { mode: 0o600 });
    return next;
  }
}
