import { mkdir, readFile, rename } from 'node:fs/promises';
import path from 'node:path';
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
  /** Free-form facts tasks record (computer name chosen, mount source, ...). */
  facts: Record<string, unknown>;
}

export function emptyState(vmId: string, vmIdSource: string): AgentState {
  return { version: 1, vmId, vmIdSource, tasks: {}, facts: {} };
}

/** Reads and writes state.json atomically; a corrupt file is moved aside, never fatal. */
export class StateStore {
  constructor(
    private readonly file: string,
    private readonly log: Logger,
  ) {}

  async read(): Promise<AgentState | undefined> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    try {
      const data = JSON.parse(text) as AgentState;
      if (data?.version !== 1 || typeof data.vmId !== 'string' || typeof data.tasks !== 'object' || data.tasks === null) {
        throw new Error('unexpected shape');
      }
      data.facts ??= {};
      return data;
    } catch (err) {
      const aside = `${this.file}.corrupt-${new Date().toISOString().replace(/[:.]/g, '')}`;
      await rename(this.file, aside);
      this.log.warn(`state file ${this.file} was corrupt (${(err as Error).message}); moved aside to ${aside}, starting afresh`);
      return undefined;
    }
  }

  async write(state: AgentState): Promise<void> {
    await mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
    await writeFileAtomic(this.file, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
  }

  /**
   * Load the state for this VM. A state from another VM id means the image
   * was captured and booted as a new VM: first boot starts again.
   */
  async forVm(ids: VmIds): Promise<{ state: AgentState; newVm: boolean; previousVmId?: string }> {
    const current = await this.read();
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
