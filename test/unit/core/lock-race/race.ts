// The lock race both tiers run (test/unit/core/lock.test.ts as any user on a
// temp file, test/lab/lock-race.test.ts as root on /var/lib/dsvm-agent in a
// private mount namespace): racer processes (worker.ts) take the lock in
// turn; exclusion is judged two ways, by a marker file each holder claims
// with O_EXCL and by the holding intervals on the shared monotonic clock.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const worker = fileURLToPath(new URL('./worker.ts', import.meta.url));
// By URL: a racer started through nsenter runs in "/", where a bare `--import tsx` is not found.
const tsx = import.meta.resolve('tsx');

export interface RacerReport {
  pid: number;
  spans: [string, string][];
  overlaps: number;
  busy: number;
}

/**
 * Race `racers` processes for `lockFile`, `rounds` acquisitions each; `outDir`
 * takes the marker and the reports. `prefix` runs each racer through another
 * command (nsenter into a namespace).
 */
export async function race(
  lockFile: string,
  outDir: string,
  racers: number,
  rounds: number,
  prefix: string[] = [],
): Promise<RacerReport[]> {
  const marker = path.join(outDir, 'holder');
  const runs = Array.from({ length: racers }, (_, i) => {
    const out = path.join(outDir, `racer-${i}.json`);
    const argv = [...prefix, process.execPath, '--import', tsx, worker, lockFile, marker, String(rounds), out];
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'inherit', 'inherit'], cwd: path.dirname(worker) });
    return new Promise<RacerReport>((resolve, reject) =>
      child.on('close', (code) =>
        code === 0
          ? readFile(out, 'utf8').then((s) => resolve(JSON.parse(s) as RacerReport), reject)
          : reject(new Error(`racer exit ${code}`)),
      ),
    );
  });
  return Promise.all(runs);
}

/** Pairs of holding intervals (of different racers) that overlap in time. */
export function overlapping(reports: RacerReport[]): string[] {
  const spans = reports.flatMap((r) => r.spans.map(([a, b]) => ({ pid: r.pid, a: BigInt(a), b: BigInt(b) })));
  spans.sort((x, y) => (x.a < y.a ? -1 : x.a > y.a ? 1 : 0));
  const bad: string[] = [];
  for (let i = 1; i < spans.length; i++) {
    const prev = spans[i - 1]!;
    const cur = spans[i]!;
    if (cur.a < prev.b) bad.push(`pid ${prev.pid} held until ${prev.b}, pid ${cur.pid} from ${cur.a}`);
  }
  return bad;
}
