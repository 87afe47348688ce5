import type { Capability } from '../../agent/capability.js';

/**
 * The pool's sweep: `dsvm-agent sweep`, run by one VM of the pool (a timer
 * or an admin), deletes the computer objects of VMs that vanished without a
 * Terminate (docs/operations.md). It adds nothing to first boot, the daemon
 * or deprovision: a VM removes its own account on Terminate, and the sweep
 * exists for the accounts of other VMs. Listed so the list names every
 * capability the agent has.
 */
export const sweep: Capability = { id: 'sweep' };
