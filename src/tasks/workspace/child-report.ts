/** What both login children (share side, $HOME side) print: one JSON report. */
export interface ChildReport {
  state: string;
  changes: string[];
  warnings: string[];
}

/** Parse a child's report; anything unexpected is an error report, never a throw. */
export function parseChildReport<R extends ChildReport>(stdout: string, fallback: string): R {
  try {
    const r = JSON.parse(stdout) as R;
    if (typeof r.state === 'string' && Array.isArray(r.changes) && Array.isArray(r.warnings)) return r;
  } catch {
    /* fall through */
  }
  return { state: 'error', changes: [], warnings: [fallback] } as ChildReport as R;
}
