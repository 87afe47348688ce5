// The reliability page's renderer: rows become one table per scenario file,
// a failed file without a failing row still reads FAILED, and only the block
// between the markers changes.
import t from 'tap';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BEGIN, END, collectRows, renderBlock, replaceBlock } from '../../../scripts/reliability-report.js';

const dir = mkdtempSync(path.join(tmpdir(), 'reliability-report-'));
writeFileSync(
  path.join(dir, 'faults-kill.json'),
  JSON.stringify([
    {
      scenario: 'kill at adcli | join',
      expected: 'valid files',
      happened: 'converged',
      numbers: { ms: 1234.567, point: 'adcli' },
      ok: true,
    },
  ]),
);
writeFileSync(path.join(dir, '_run.json'), '{"not":"rows"}');

t.test('rows render as a table, pipes escaped, numbers shown', async (t) => {
  const block = renderBlock(collectRows(dir), undefined);
  t.match(block, /\| kill at adcli \\\| join \| valid files \| converged \| ms: 1234\.57; point: adcli \| ok \|/);
  t.ok(block.startsWith(BEGIN) && block.endsWith(END));
});

t.test('a file that exited non-zero with only passing rows reads FAILED', async (t) => {
  const block = renderBlock(collectRows(dir), {
    short: true,
    startedAt: '2026-12-06T09:00:00Z',
    files: [
      { file: 'test/reliability/faults-kill.test.ts', exitCode: 1, seconds: 40 },
      { file: 'test/reliability/faults-disk.test.ts', exitCode: 1, seconds: 3 },
    ],
  });
  t.match(block, /short version/);
  t.match(block, /Last run 2026-12-06 09:00 UTC/);
  t.match(block, /failed: faults-kill\.test\.ts, faults-disk\.test\.ts/);
  t.match(block, /\| \(the file itself\) \|.*tap exited 1.*\*\*FAILED\*\* \|/);
  t.match(block, /### faults-disk/, 'a file that recorded no rows still has its section');
});

t.test('only the marked block is replaced; a page without markers is refused', async (t) => {
  const page = `# R\n\nkept\n\n${BEGIN}\nold\n${END}\n\nafter\n`;
  const out = replaceBlock(page, `${BEGIN}\nnew\n${END}`);
  t.equal(out, `# R\n\nkept\n\n${BEGIN}\nnew\n${END}\n\nafter\n`);
  t.throws(() => replaceBlock('# no markers', 'x'), /lacks the markers/);
});

t.test('a row missing a field names the file and the field', async (t) => {
  writeFileSync(path.join(dir, 'bad.json'), JSON.stringify([{ scenario: 's', expected: 'e', happened: 'h', numbers: {} }]));
  t.throws(() => collectRows(dir), /bad\.json: row 0: "ok" missing/);
});

t.test('the page in the repository has the markers', async (t) => {
  const page = readFileSync(path.resolve('docs/RELIABILITY.md'), 'utf8');
  t.ok(page.includes(BEGIN) && page.includes(END));
});
