/**
 * The rows a reliability scenario records for docs/RELIABILITY.md: one JSON
 * file per scenario file, `$RELIABILITY_OUT/<file base>.json`, an array of
 * {scenario, expected, happened, numbers, ok}. `scripts/reliability-report.ts`
 * renders them. A row is written as soon as it is known, so a scenario that
 * dies later still leaves the rows it had.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface ReliabilityRow {
  scenario: string;
  expected: string;
  happened: string;
  numbers: Record<string, number | string>;
  ok: boolean;
}

/** Where the rows go; the runner sets it, this default matches its own. */
export const RELIABILITY_OUT = process.env.RELIABILITY_OUT || '/var/tmp/dsvm-reliability';

/** The short version CI runs (RELIABILITY_SHORT=1): fewer points, shorter waits. */
export const SHORT = process.env.RELIABILITY_SHORT === '1';

export interface Rows {
  rows: ReliabilityRow[];
  record(row: ReliabilityRow): void;
  /** Runs a scenario; if it throws, records that it broke (with the error) and rethrows, so the page never lacks its row. */
  guard(scenario: string, expected: string, body: () => Promise<void>): Promise<void>;
}

/** A recorder for one scenario file: `rows.record(row)` rewrites the file with every row so far. */
export function rowsFor(testFile: string): Rows {
  const base = path.basename(testFile).replace(/\.test\.ts$/, '');
  const file = path.join(RELIABILITY_OUT, `${base}.json`);
  const rows: ReliabilityRow[] = [];
  mkdirSync(RELIABILITY_OUT, { recursive: true });
  // A new run of this file starts a new list: rows of an earlier run must not pass for this one's.
  writeFileSync(file, '[]\n');
  return {
    rows,
    record(row) {
      const i = rows.findIndex((r) => r.scenario === row.scenario);
      if (i >= 0) rows[i] = row;
      else rows.push(row);
      writeFileSync(file, `${JSON.stringify(rows, null, 2)}\n`);
    },
    async guard(scenario, expected, body) {
      try {
        await body();
      } catch (err) {
        this.record({
          scenario,
          expected,
          happened: `the scenario broke: ${(err as Error).message.slice(0, 400)}`,
          numbers: {},
          ok: false,
        });
        throw err;
      }
    },
  };
}

/** Reads one scenario file's rows; throws naming the file and what is wrong. */
export function readRows(file: string): ReliabilityRow[] {
  const data = JSON.parse(readFileSync(file, 'utf8')) as unknown;
  if (!Array.isArray(data)) throw new Error(`${file}: not a JSON array of rows`);
  return data.map((r: unknown, i) => {
    const row = r as Partial<ReliabilityRow>;
    const bad =
      typeof row.scenario !== 'string'
        ? 'scenario'
        : typeof row.expected !== 'string'
          ? 'expected'
          : typeof row.happened !== 'string'
            ? 'happened'
            : typeof row.ok !== 'boolean'
              ? 'ok'
              : typeof row.numbers !== 'object' || row.numbers === null
                ? 'numbers'
                : undefined;
    if (bad) throw new Error(`${file}: row ${i}: "${bad}" missing or of the wrong type`);
    return row as ReliabilityRow;
  });
}
