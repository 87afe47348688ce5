import type { GlobalOptions } from '../context.js';
import { notImplemented } from '../errors.js';

/** `dsvm-agent status`. */
export async function statusCommand(_g: GlobalOptions, _opts: unknown): Promise<number> {
  throw notImplemented('status is not available in this build yet');
}
