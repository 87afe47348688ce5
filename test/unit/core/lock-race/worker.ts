// One racer of the lock race test (test/unit/core/lock.test.ts, test/lab/lock-race.test.ts):
// takes the lock ROUNDS times, and while it holds it claims a marker file
// with O_EXCL (failing if any other holder has it) and records when it held
// the lock on the monotonic clock, which all processes share.
// argv: LOCKFILE MARKER ROUNDS OUTFILE
import { constants } from 'node:fs';
import { open, unlink, writeFile } from 'node:fs/promises';
import { acquireLock } from '../../../../src/agent/lock.js';

const [lockFile, marker, rounds, outFile] = process.argv.slice(2) as [string, string, string, string];
const spans: [string, string][] = [];
let overlaps = 0;
let busy = 0;
for (let i = 0; i < Number(rounds); i++) {
  let release;
  try {
    release = await acquireLock(lockFile, `racer ${process.pid}`, { waitMs: 30_000 });
  } catch {
    // A lock that answers "busy" instead of waiting (the old pid file) is asked again.
    if (++busy > 100_000) throw new Error('the lock stayed busy');
    i--;
    await new Promise((r) => setTimeout(r, Math.random() * 3));
    continue;
  }
  const start = process.hrtime.bigint();
  try {
    const h = await open(marker, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    await h.close();
    await new Promise((r) => setTimeout(r, 1 + Math.random() * 2));
    await unlink(marker);
  } catch {
    overlaps++;
  }
  spans.push([String(start), String(process.hrtime.bigint())]);
  await release();
  await new Promise((r) => setTimeout(r, Math.random() * 2));
}
await writeFile(outFile, JSON.stringify({ pid: process.pid, spans, overlaps, busy }));
