// Bad answers from IMDS, Scheduled Events, Key Vault, ARM and Files REST
// (issue 18): each row of azure-cases.ts is set on the loopback fakes, met by
// the agent's own code in a separate process (azure-driver.ts), and must end
// in a classified error naming the route and the fix, within the stated
// timeout, reading at most a bounded part of a huge body, with no unhandled
// rejection and nothing lost. docs/RELIABILITY.md shows the same rows.
import t, { type Test } from 'tap';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { startFakes, type Fakes } from '../../fakes/index.js';
import { contosoPoolSeed } from '../../helpers/azure-agent.js';
import { AZURE_FAULT_CASES, HUGE, IMDS_TIMEOUT_MS, MB, SLOW_MS, TRY_TIMEOUT_MS, type AzureFaultCase } from './azure-cases.js';
import type { DriverResult, DriverSetup } from './azure-driver.js';

const SUBSCRIPTION = 'b8635b18-1560-4250-926e-6ff110446a18';
const KEY = 'FaultsStorageKey+ab/CdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH==';
const SECRET = 'Join-P@ss-faults-0123456789';
const OWN_IP = '10.77.0.10';

/** A huge body may be read up to the 4 MiB cap (1 MiB for IMDS) plus what the loopback socket buffers hold. */
const MAX_READ_OF_HUGE = 16 * MB;

/**
 * How long a call may take against an answer that comes only after SLOW_MS
 * (or stalls that long): IMDS calls are one try of IMDS_TIMEOUT_MS (the
 * driver meets a Scheduled Events fault twice: the watcher's call and its
 * own); an SDK call gives up after one try of TRY_TIMEOUT_MS, so it ends
 * well before SLOW_MS, which is what any try that waited for the answer
 * would take.
 */
function slowBudgetMs(c: AzureFaultCase): { min: number; max: number } {
  if (c.call.startsWith('imds.')) return { min: IMDS_TIMEOUT_MS, max: IMDS_TIMEOUT_MS + 1_000 };
  if (c.call.startsWith('events.')) return { min: 2 * IMDS_TIMEOUT_MS, max: 2 * IMDS_TIMEOUT_MS + 1_000 };
  return { min: TRY_TIMEOUT_MS, max: SLOW_MS - 500 };
}

/** The page's rows, from the table. */
function reliabilityRows(): string {
  const head = '| Service | Route | Bad answer | Outcome | What the agent does |\n|---|---|---|---|---|';
  const rows = AZURE_FAULT_CASES.map(
    (c) => `| ${c.service} | \`${c.route}\` | ${c.bad} | ${c.outcome}${c.reason ? ` (\`${c.reason}\`)` : ''} | ${c.does} |`,
  );
  return `${head}\n${rows.join('\n')}`;
}

const BEGIN = '<!-- azure-faults:begin (generated from test/unit/faults/azure-cases.ts) -->';
const END = '<!-- azure-faults:end -->';

class Driver {
  private readonly answers: AsyncIterator<string>;
  constructor(private readonly child: ChildProcessWithoutNullStreams) {
    this.answers = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  }
  async run(id: string, phase = 'fault'): Promise<DriverResult> {
    this.child.stdin.write(`${JSON.stringify({ id, phase })}\n`);
    const next = await this.answers.next();
    if (next.done) throw new Error('the driver process ended');
    return JSON.parse(next.value) as DriverResult;
  }
}

function startDriver(fakes: Fakes, stderr: string[]): { driver: Driver; exited: Promise<number | null> } {
  const setup: DriverSetup = {
    imds: fakes.urls.imds,
    arm: fakes.urls.arm,
    files: fakes.urls.files,
    vaultUrl: fakes.vaultUrl('dsvm'),
    subscriptionId: SUBSCRIPTION,
    storageKey: KEY,
    ownIp: OWN_IP,
  };
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '--import', path.resolve('test/helpers/localhost-dns.mjs'), path.resolve('test/unit/faults/azure-driver.ts')],
    {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NODE_EXTRA_CA_CERTS: fakes.caFile, FAULT_SETUP: JSON.stringify(setup) },
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  child.stderr.on('data', (d: Buffer) => stderr.push(d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { driver: new Driver(child), exited };
}

t.test('docs/RELIABILITY.md shows exactly the table of bad answers', async (t) => {
  const file = path.resolve('docs/RELIABILITY.md');
  const text = await readFile(file, 'utf8');
  const start = text.indexOf(BEGIN);
  const end = text.indexOf(END);
  t.ok(start >= 0 && end > start, 'the page has the generated block');
  const block = `${BEGIN}\n${reliabilityRows()}\n${END}`;
  if (process.env.DSVM_WRITE_RELIABILITY === '1') await writeFile(file, text.slice(0, start) + block + text.slice(end + END.length));
  t.equal(text.slice(start, end + END.length), block, 'rows match azure-cases.ts (DSVM_WRITE_RELIABILITY=1 rewrites them)');
  t.ok(AZURE_FAULT_CASES.length >= 30, `${AZURE_FAULT_CASES.length} cases`);
  t.same([...new Set(AZURE_FAULT_CASES.map((c) => c.service))].sort(), ['ARM', 'Files REST', 'IMDS', 'Key Vault', 'Scheduled Events']);
  t.equal(new Set(AZURE_FAULT_CASES.map((c) => c.id)).size, AZURE_FAULT_CASES.length, 'case ids are unique');
});

t.test('bad answers from Azure', async (t) => {
  const fakes = await startFakes({
    seed: {
      // Short-lived tokens: MSAL then asks IMDS again for every call, so token faults are met, not hidden by its cache.
      tokenLifetimeSeconds: 60,
      secrets: { 'dsvm-join': SECRET },
      ...contosoPoolSeed(SUBSCRIPTION, KEY),
      scheduledEvents: [{ EventId: 'ours', EventType: 'Terminate', Resources: ['dsvmpool_3'] }],
      handles: [
        { account: 'contosofiles', share: 'workspace', path: 'own.ipynb', handleId: 'own', clientIp: `${OWN_IP}:49152` },
        { account: 'contosofiles', share: 'workspace', path: 'other.ipynb', handleId: 'foreign', clientIp: '10.77.0.11:49152' },
      ],
    },
  });
  t.teardown(() => fakes.close());
  const stderr: string[] = [];
  const { driver, exited } = startDriver(fakes, stderr);

  t.test('every call works against healthy fakes (the control)', async (t) => {
    for (const call of new Set(AZURE_FAULT_CASES.map((c) => c.call))) {
      const c = AZURE_FAULT_CASES.find((x) => x.call === call) as AzureFaultCase;
      fakes.reset();
      const r = await driver.run(c.id, 'healthy');
      t.ok(r.ok, `${call}: ${r.message ?? 'ok'}`);
      t.same(r.unhandled, [], `${call}: no unhandled rejection`);
    }
  });

  for (const c of AZURE_FAULT_CASES) {
    t.test(c.id, async (t) => {
      fakes.reset();
      fakes.fail(c.route, c.fault);
      const r = await driver.run(c.id);
      t.same(r.unhandled, [], 'no unhandled rejection or exception');
      t.ok(
        fakes.requests[c.route.split('.')[0] as keyof Fakes['requests']].some((q) => q.route === c.route && q.injected),
        'the fault was met',
      );
      if (c.outcome === 'reported') {
        t.ok(r.ok, `the call goes on (${r.message ?? ''})`);
        t.match(r.value, { failed: 1, closed: 0, foreign: 1 }, 'the failed close is counted');
        t.match(r.logs.join('\n'), c.message, 'and logged with the route and the reason');
      } else {
        t.notOk(r.ok, `the call fails (it returned ${JSON.stringify(r.value)})`);
        t.equal(r.kind, c.outcome, `classified ${c.outcome}: ${r.message}`);
        if (c.reason) t.equal(r.reason, c.reason, 'reason');
        t.match(r.message, c.message, 'the message names the route and what was wrong');
        if (c.fix) t.match(r.fix, c.fix, 'the fix');
      }
      if (c.fault.delayMs || c.fault.stallMs) {
        const { min, max } = slowBudgetMs(c);
        t.ok(r.ms >= min - 50 && r.ms < max, `gave up at the stated timeout (${min} ms <= ${r.ms} ms < ${max} ms)`);
      }
      if (c.fault.bodyBytes) {
        const met = fakes.requests[c.route.split('.')[0] as keyof Fakes['requests']].filter((q) => q.route === c.route && q.injected);
        const most = Math.max(...met.map((q) => q.sentBytes ?? HUGE));
        t.ok(most < MAX_READ_OF_HUGE, `read at most ${Math.round(most / MB)} MB of the ${HUGE / MB} MB body`);
      }
      await nothingLost(t, c, r);
    });
  }

  /** What a fault must not cost: an event handled or approved behind the agent's back, a handle closed that was not ours. */
  async function nothingLost(t: Test, c: AzureFaultCase, r: DriverResult): Promise<void> {
    if (c.call === 'events.poll') {
      t.same(r.steps, [], 'no clean-up step ran on a bad document');
      t.same(fakes.state.approvals(), [], 'nothing approved');
      t.match(r.logs.join('\n'), /scheduled events: .*\/metadata\/scheduledevents/, 'the watcher logged the classified error');
    }
    if (c.call === 'events.approve') {
      t.same(r.steps, ['close-handles'], 'the clean-up ran');
      t.notOk((r.journal as { approvedAt?: string } | undefined)?.approvedAt, 'not journaled as approved');
      const again = await driver.run(c.id, 'recover');
      t.same(again.unhandled, [], 'recovery: no unhandled rejection');
      t.ok((again.journal as { approvedAt?: string } | undefined)?.approvedAt, 'the next poll approves and journals it');
      t.same(again.steps, ['close-handles'], 'the clean-up is not run twice');
      t.ok(
        fakes.state.approvals().some((a) => a.EventId === 'ours'),
        'IMDS got the approval',
      );
    }
    if (c.call === 'files.closeHandles') {
      const open = fakes.state.handles().map((h) => h.handleId);
      t.ok(open.includes('foreign'), "another VM's handle stays open");
      t.ok(open.includes('own'), 'our handle is still open, and reported');
    }
    if (c.call === 'keyVault.secret' || c.call === 'arm.listKeys') {
      t.notMatch(r.message ?? '', SECRET, 'no secret in the message');
      t.notMatch(r.message ?? '', KEY, 'no key in the message');
    }
  }

  t.test('the agent process did not crash', async (t) => {
    const child = (driver as unknown as { child: ChildProcessWithoutNullStreams }).child;
    child.stdin.end();
    t.equal(await exited, 0, `the driver exits 0 after every case (stderr: ${stderr.join('').slice(-2000)})`);
  });
});
