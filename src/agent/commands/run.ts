import type { GlobalOptions } from '../context.js';
import { notImplemented } from '../errors.js';

/** `dsvm-agent run`. */
export async function runCommand(_g: GlobalOptions, _opts: unknown): Promise<number> {
  throw notImplemented('the daemon is not available in this build yet');
}
