import type { GlobalOptions } from '../context.js';
import { notImplemented } from '../errors.js';

/** `dsvm-agent login`. */
export async function loginCommand(_g: GlobalOptions, _opts: unknown): Promise<number> {
  throw notImplemented('login is not available in this build yet');
}
