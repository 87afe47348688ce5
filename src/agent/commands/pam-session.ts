import type { GlobalOptions } from '../context.js';
import { notImplemented } from '../errors.js';

/** `dsvm-agent pam-session`. */
export async function pamSessionCommand(_g: GlobalOptions, _opts: unknown): Promise<number> {
  throw notImplemented('pam-session is not available in this build yet');
}
