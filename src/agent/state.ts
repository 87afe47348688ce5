import { mkdir, readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import { permanent } from './errors.js';
import { writeFileAtomic } from './fsutil.js';
import type { Logger } from './log.js';
import { primaryVmId, sameVm, type VmIds } from './vm-id.js';

/** What the agent remembers across runs; never a secret. */
export interface AgentState {
  version: 1;
  /** The VM this state belongs to; a different id means a new first boot. */
  vmId: string;
  /** Where vmId came from: imds, product_uuid or cloud-init. */
  vmIdSource: string;
  /** Every id this VM was seen with, per source (a slow IMDS at first boot must not look like a new VM later). */
  vmIds?: VmIds;
  firstBootStartedAt?: string;
  firstBootCompletedAt?: string;
  firstBootDurationMs?: number;
  /** Per task: last outcome of `apply`. */
  tasks: Record<string, { appliedAt?: string; lastError?: string; detail?: Record<string, unknown> }>;
  /** What tasks record for later runs and for each other. */
  facts: AgentFacts;
}

/** The domain controller preflight found answering on every port it checks, and when. */
export interface DomainControllerFact {
  host: string;
  address: string;
  /** The DC's clock minus ours, in ms, when it was found. */
  clockOffsetMs: number;
  /** When preflight found it (ISO time of the task context's clock); the join uses it while it is recent. */
  foundAt?: string;
}

/**
 * What tasks record, never a secret. Each one has one writer; a state file
 * read from disk has every fact checked (parseFacts), so readers trust
 * these types and re-check nothing.
 */
export interface AgentFacts {
  /** The config first boot last ran with (secret references, never values): deprovision validates it before use. */
  appliedConfig?: unknown;
  /** preflight: the DC the join talks to (what one task learns for the next). */
  domainController?: DomainControllerFact;
  /** domain-join: the computer name joined under. */
  computerName?: string;
  /** domain-join: the host name the name rule reads instead of the system's (only tests write it). */
  hostname?: string;
  /** domain-join: the nsswitch databases it added `sss` to (undo takes exactly those out again). */
  nsswitchAdded?: string[];
  /** imds-guard: the rule set it installed (the check compares the kernel's against it without an NSS look-up). */
  imdsGuard?: { address: string; port: number; gids: number[] };
  /** share-mount: the mount source and the unit that mounts it. */
  shareSource?: string;
  shareUnit?: string;
}

export function emptyState(vmId: string, vmIdSource: string): AgentState {
  return { version: 1, vmId, vmIdSource, tasks: {}, facts: {} };
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Each known fact of a state file that has its type; anything else (an older or hand-edited file) is dropped. */
export function parseFacts(raw: unknown): AgentFacts {
  if (!isObject(raw)) return {};
  const facts: AgentFacts = {};
  if (raw.appliedConfig !== undefined) facts.appliedConfig = raw.appliedConfig;
  const dc = raw.domainController;
  if (isObject(dc) && isString(dc.host) && isString(dc.address) && isNumber(dc.clockOffsetMs))
    facts.domainController = {
      host: dc.host,
      address: dc.address,
      clockOffsetMs: dc.clockOffsetMs,
      ...(isString(dc.foundAt) ? { foundAt: dc.foundAt } : {}),
    };
  if (isString(raw.computerName)) facts.computerName = raw.computerName;
  if (isString(raw.hostname)) facts.hostname = raw.hostname;
  if (Array.isArray(raw.nsswitchAdded) && raw.nsswitchAdded.every(isString)) facts.nsswitchAdded = raw.nsswitchAdded;
  const guard = raw.imdsGuard;
  if (isObject(guard) && isString(guard.address) && isNumber(guard.port) && Array.isArray(guard.gids) && guard.gids.every(isNumber))
    facts.imdsGuard = { address: guard.address, port: guard.port, gids: guard.gids };
  if (isString(raw.shareSource)) facts.shareSource = raw.shareSource;
  if (isString(raw.shareUnit)) facts.shareUnit = raw.shareUnit;
  return facts;
}

/** Why `text` is not a state file, or the state it holds. */
function parseState(text: string): AgentState | { problem: string } {
  try {
    const data = JSON.parse(text) as AgentState;
    if (data?.version !== 1 || typeof data.vmId !== 'string' || typeof data.tasks !== 'object' || data.tasks === null) {
      return { problem: 'unexpected shape' };
    }
    data.facts = parseFacts(data.facts);
    return data;
  } catch (err) {
    return { problem: (err as Error).message };
  }
}

/** The fix for a state file the agent cannot read or move, by errno. */
function fileFix(file: string, code: string | undefined): string {
  switch (code) {
    case 'EACCES':
    case 'EPERM':
      return `run dsvm-agent as root (${path.dirname(file)} is root-only)`;
    case 'EISDIR':
      return `${file} is a directory: remove it (the agent recreates the file)`;
    case 'EROFS':
      return `${path.dirname(file)} is on a read-only file system: make it writable`;
    default:
      return `check ${file} and ${path.dirname(file)} (root-owned, mode 0700), or remove ${file} to start afresh`;
  }
}

/**
 * Reads and writes state.json atomically. A corrupt file is moved aside,
 * never fatal; a read-only store (`plan`, `status`) leaves it where it is.
 */
export class StateStore {
  constructor(
    private readonly file: string,
    private readonly log: Logger,
  ) {}

  /** The state on disk, or undefined when there is none (or it is corrupt). */
  async read(opts: { readOnly?: boolean } = {}): Promise<AgentState | undefined> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return undefined;
      throw permanent(`cannot read the state file ${this.file} (${code ?? (err as Error).message})`, {
        fix: fileFix(this.file, code),
        reason: 'state-unreadable',
        cause: err,
      });
    }
    const parsed = parseState(text);
    if (!('problem' in parsed)) return parsed;
    if (opts.readOnly) {
      this.log.warn(
        `state file ${this.file} is corrupt (${parsed.problem}); read as empty and left in place (the next provision moves it aside)`,
      );
      return undefined;
    }
    const aside = `${this.file}.corrupt-${new Date().toISOString().replace(/[:.]/g, '')}`;
    try {
      await rename(this.file, aside);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw permanent(
        `state file ${this.file} is corrupt (${parsed.problem}) and could not be moved aside to ${aside} (${code ?? (err as Error).message})`,
        {
          fix: `${fileFix(this.file, code)}; or move ${this.file} away by hand`,
          reason: 'state-corrupt',
          cause: err,
        },
      );
    }
    this.log.warn(`state file ${this.file} was corrupt (${parsed.problem}); moved aside to ${aside}, starting afresh`);
    return undefined;
  }

  /**
   * Replaces the file atomically: on any failure the previous state stays as
   * it was. Node's own message for a failed write names neither the file nor
   * the cause an operator can act on ("ENOSPC: no space left on device,
   * write"): the error says both, with the fix.
   */
  async write(state: AgentState): Promise<void> {
    try {
      await mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
      await writeFileAtomic(this.file, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const dir = path.dirname(this.file);
      const full = code === 'ENOSPC' || code === 'EDQUOT';
      throw permanent(
        `state file ${this.file} could not be written (${full ? `no space left on the file system of ${dir}` : (err as Error).message}); the previous state is kept as it was`,
        {
          fix: full
            ? `free space on the file system of ${dir} (df -h ${dir}), then run \`dsvm-agent provision\` again`
            : fileFix(this.file, code),
          reason: 'state-unwritable',
          cause: err,
        },
      );
    }
  }

  /**
   * Load the state for this VM. A state from another VM id means the image
   * was captured and booted as a new VM: first boot starts again.
   * `readOnly` never touches the file, even a corrupt one.
   */
  async forVm(ids: VmIds, opts: { readOnly?: boolean } = {}): Promise<{ state: AgentState; newVm: boolean; previousVmId?: string }> {
    const current = await this.read(opts);
    const { vmId, source } = primaryVmId(ids);
    if (current) {
      const known: VmIds = current.vmIds ?? { [current.vmIdSource]: current.vmId };
      if (sameVm(known, ids)) {
        // Learn ids that were not available before (IMDS late at first boot), keep the first name.
        current.vmIds = { ...ids, ...known };
        return { state: current, newVm: false };
      }
      this.log.info(`VM id changed (${current.vmId} -> ${vmId}): this is a new VM, first boot runs again`);
    }
    const state = emptyState(vmId, source);
    state.vmIds = ids;
    return { state, newVm: true, ...(current ? { previousVmId: current.vmId } : {}) };
  }
}
