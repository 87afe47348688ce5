import t from 'tap';
import net from 'node:net';
import { makeTestContext, writeSecretFile } from '../../helpers/context.js';
import { AgentError } from '../../../src/agent/errors.js';
import { runTasks } from '../../../src/agent/task.js';
import {
  clockOffset,
  createPreflightTask,
  recentDomainController,
  runPreflight,
  type PreflightDeps,
  type SrvTarget,
} from '../../../src/tasks/preflight/index.js';
import { parseGeneralizedTime, parseRootDseTime, readDcClockOffset, rootDseTimeRequest } from '../../../src/tasks/preflight/ldap-time.js';

const dnsError = (code: string): Error => Object.assign(new Error(`query failed ${code}`), { code });
const dc1: SrvTarget = { name: 'dc1.contoso.test', port: 389, priority: 0, weight: 100 };
const dc2: SrvTarget = { name: 'dc2.contoso.test', port: 389, priority: 0, weight: 50 };

function fakeDeps(
  over: Partial<{
    srv: Record<string, SrvTarget[] | Error>;
    a: Record<string, string[]>;
    closed: Record<string, number[]>;
    offset: number | Error;
  }> = {},
): PreflightDeps & { probed: string[] } {
  const srv = over.srv ?? { '_ldap._tcp.contoso.test': [dc1], '_kerberos._tcp.contoso.test': [{ ...dc1, port: 88 }] };
  const a = over.a ?? { 'dc1.contoso.test': ['10.77.0.2'], 'dc2.contoso.test': ['10.77.0.4'] };
  const probed: string[] = [];
  return {
    probed,
    resolveSrv: async (name) => {
      const v = srv[name];
      if (v instanceof Error) throw v;
      if (!v) throw dnsError('ENOTFOUND');
      return v;
    },
    resolve4: async (name) => {
      const v = a[name];
      if (!v) throw dnsError('ENOTFOUND');
      return v;
    },
    probePort: async (host, port) => {
      probed.push(`${host}:${port}`);
      if (over.closed?.[host]?.includes(port)) throw new Error('connect ECONNREFUSED');
    },
    clockOffset: async () => {
      if (over.offset instanceof Error) throw over.offset;
      return over.offset ?? 1200;
    },
  };
}

async function ctxWithSecret(secret = true) {
  const tc = await makeTestContext();
  if (secret) await writeSecretFile(tc.paths, '/etc/dsvm-agent/join-password', 'S3cret-Join');
  return tc;
}

t.test('preflight classification', async (t) => {
  const cases: { name: string; deps: PreflightDeps; secret?: boolean; kind?: string; reason?: string; warn?: RegExp; dc?: string }[] = [
    { name: 'all good', deps: fakeDeps(), dc: '10.77.0.2' },
    {
      name: 'NXDOMAIN: wrong domain name (permanent)',
      deps: fakeDeps({ srv: { '_ldap._tcp.contoso.test': dnsError('ENOTFOUND') } }),
      kind: 'permanent',
      reason: 'dns-domain-unknown',
    },
    {
      name: 'no SRV data: DNS is not the DCs (permanent)',
      deps: fakeDeps({ srv: { '_ldap._tcp.contoso.test': dnsError('ENODATA') } }),
      kind: 'permanent',
      reason: 'dns-srv-missing',
    },
    {
      name: 'empty SRV answer (permanent)',
      deps: fakeDeps({ srv: { '_ldap._tcp.contoso.test': [], '_kerberos._tcp.contoso.test': [dc1] } }),
      kind: 'permanent',
      reason: 'dns-srv-missing',
    },
    {
      name: 'SERVFAIL: DNS not ready (transient)',
      deps: fakeDeps({ srv: { '_ldap._tcp.contoso.test': dnsError('ESERVFAIL') } }),
      kind: 'transient',
      reason: 'dns-not-ready',
    },
    {
      name: 'timeout: DNS not ready (transient)',
      deps: fakeDeps({ srv: { '_ldap._tcp.contoso.test': dnsError('ETIMEOUT') } }),
      kind: 'transient',
      reason: 'dns-not-ready',
    },
    {
      name: 'kerberos SRV missing',
      deps: fakeDeps({ srv: { '_ldap._tcp.contoso.test': [dc1], '_kerberos._tcp.contoso.test': dnsError('ENODATA') } }),
      kind: 'permanent',
      reason: 'dns-srv-missing',
    },
    { name: 'a port closed: transient', deps: fakeDeps({ closed: { '10.77.0.2': [464] } }), kind: 'transient', reason: 'dc-unreachable' },
    { name: 'kerberos closed: transient', deps: fakeDeps({ closed: { '10.77.0.2': [88] } }), kind: 'transient', reason: 'dc-unreachable' },
    { name: 'LDAP closed: transient', deps: fakeDeps({ closed: { '10.77.0.2': [389] } }), kind: 'transient', reason: 'dc-unreachable' },
    {
      name: 'SMB closed on the DC: passes, warning naming Group Policy',
      deps: fakeDeps({ closed: { '10.77.0.2': [445] } }),
      warn: /^port 445 on the DC dc1\.contoso\.test \(10\.77\.0\.2\) is not reachable.*Group Policy/,
      dc: '10.77.0.2',
    },
    {
      name: 'DNS closed on the DC: passes, warning naming the DNS registration',
      deps: fakeDeps({ closed: { '10.77.0.2': [53] } }),
      warn: /^port 53 on the DC .*cannot register this VM's name .*domain\.dnsUpdate: false/,
      dc: '10.77.0.2',
    },
    {
      name: 'both closed, first DC kept: two warnings, no second DC tried',
      deps: fakeDeps({
        srv: { '_ldap._tcp.contoso.test': [dc1, dc2], '_kerberos._tcp.contoso.test': [dc1] },
        closed: { '10.77.0.2': [53, 445] },
      }),
      warn: /port 53 on the DC[^\n]*\nport 445 on the DC/,
      dc: '10.77.0.2',
    },
    {
      name: 'first DC down, second fine',
      deps: fakeDeps({
        srv: { '_ldap._tcp.contoso.test': [dc1, dc2], '_kerberos._tcp.contoso.test': [dc1] },
        closed: { '10.77.0.2': [88] },
      }),
      dc: '10.77.0.4',
    },
    { name: 'DC has no address: transient', deps: fakeDeps({ a: {} }), kind: 'transient', reason: 'dc-unreachable' },
    { name: 'clock 30 s off: fine', deps: fakeDeps({ offset: 30_000 }), dc: '10.77.0.2' },
    {
      name: 'clock 2 min off: warning',
      deps: fakeDeps({ offset: -120_000 }),
      warn: /differs from the DC dc1.contoso.test by -120.0 s/,
      dc: '10.77.0.2',
    },
    { name: 'clock 6 min off: permanent with fix', deps: fakeDeps({ offset: 360_000 }), kind: 'permanent', reason: 'clock-skew' },
    {
      name: 'clock unreadable: transient',
      deps: fakeDeps({ offset: new Error('no answer') }),
      kind: 'transient',
      reason: 'clock-unavailable',
    },
    { name: 'secret missing: permanent', deps: fakeDeps(), secret: false, kind: 'permanent', reason: 'secret-missing' },
  ];
  for (const c of cases) {
    const { ctx } = await ctxWithSecret(c.secret ?? true);
    try {
      const r = await runPreflight(ctx, c.deps, { portTimeoutMs: 10 });
      t.equal(c.kind, undefined, `${c.name}: passes`);
      t.equal(r.dc.address, c.dc, `${c.name}: DC chosen`);
      if (c.warn) t.match(r.warnings.join('\n'), c.warn, `${c.name}: warning`);
      else t.same(r.warnings, [], `${c.name}: no warning`);
    } catch (err) {
      t.ok(err instanceof AgentError, `${c.name}: classified error`);
      const e = err as AgentError;
      t.equal(e.kind, c.kind, `${c.name}: kind (${e.message})`);
      t.equal(e.reason, c.reason, `${c.name}: reason`);
      t.ok(e.fix, `${c.name}: has a fix`);
    }
  }
});

t.test('every port is probed', async (t) => {
  const { ctx } = await ctxWithSecret();
  const deps = fakeDeps();
  await runPreflight(ctx, deps);
  t.same(deps.probed.sort(), ['10.77.0.2:389', '10.77.0.2:445', '10.77.0.2:464', '10.77.0.2:53', '10.77.0.2:88'].sort());
});

t.test('DNS closed on the DC with domain.dnsUpdate off: the warning says nothing of the agent needs it', async (t) => {
  const tc = await makeTestContext({ config: { domain: { dnsUpdate: false } } });
  await writeSecretFile(tc.paths, '/etc/dsvm-agent/join-password', 'S3cret-Join');
  const r = await runPreflight(tc.ctx, fakeDeps({ closed: { '10.77.0.2': [53] } }), { portTimeoutMs: 10 });
  t.equal(r.warnings.length, 1);
  t.match(r.warnings[0], /domain\.dnsUpdate is off, so nothing of the agent needs it/);
});

t.test('the engine retries a transient preflight failure, and check never reports changes', async (t) => {
  const tc = await ctxWithSecret();
  let calls = 0;
  const deps = fakeDeps();
  const flaky: PreflightDeps = {
    ...deps,
    resolveSrv: async (name) => {
      calls++;
      if (calls <= 2) throw dnsError('ESERVFAIL');
      return deps.resolveSrv(name);
    },
  };
  const out = await runTasks([createPreflightTask(flaky)], tc.ctx, {
    backoff: { initialMs: 100, maxDelayMs: 1000, factor: 2, maxAttempts: 5, maxElapsedMs: 60_000 },
    random: () => 0.5,
  });
  t.equal(out[0]?.status, 'ok', 'succeeds after retries');
  t.equal(out[0]?.status === 'ok' && out[0].changed, false, 'nothing changed');
  t.equal(out[0]?.status === 'ok' && out[0].attempts, 3, 'two transient failures, then success');
});

t.test('rootDSE currentTime over a real socket', async (t) => {
  t.equal(parseGeneralizedTime('20260101120000.0Z'), Date.UTC(2026, 0, 1, 12, 0, 0));
  t.equal(parseGeneralizedTime('20260101120000Z'), Date.UTC(2026, 0, 1, 12, 0, 0));
  t.throws(() => parseGeneralizedTime('yesterday'));
  const entry = (time: string): Buffer => {
    const tlv = (tag: number, v: Buffer): Buffer => Buffer.concat([Buffer.from([tag, v.length]), v]);
    const attr = tlv(0x30, Buffer.concat([tlv(0x04, Buffer.from('currentTime')), tlv(0x31, tlv(0x04, Buffer.from(time)))]));
    const e = tlv(0x64, Buffer.concat([tlv(0x04, Buffer.alloc(0)), tlv(0x30, attr)]));
    const done = tlv(0x65, Buffer.concat([tlv(0x0a, Buffer.from([0])), tlv(0x04, Buffer.alloc(0)), tlv(0x04, Buffer.alloc(0))]));
    return Buffer.concat([
      tlv(0x30, Buffer.concat([tlv(0x02, Buffer.from([1])), e])),
      tlv(0x30, Buffer.concat([tlv(0x02, Buffer.from([1])), done])),
    ]);
  };
  t.same(parseRootDseTime(entry('20260101120000.0Z')), { done: true, time: '20260101120000.0Z', resultCode: 0 });
  t.same(parseRootDseTime(entry('20260101120000.0Z').subarray(0, 10)), { done: false }, 'waits for more bytes');

  const serverTime = new Date(Date.now() + 10 * 60_000);
  const stamp = serverTime
    .toISOString()
    .replace(/[-:T]/g, '')
    .replace(/\.\d+Z$/, '.0Z');
  let request: Buffer | undefined;
  const server = net.createServer((s) => {
    s.once('data', (d) => {
      request = d;
      // Answer in two chunks to exercise reassembly.
      const reply = entry(stamp);
      s.write(reply.subarray(0, 7));
      setTimeout(() => s.end(reply.subarray(7)), 20);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const offset = await readDcClockOffset('127.0.0.1', { port, timeoutMs: 2000 });
  server.close();
  t.same(request, rootDseTimeRequest(), 'sent the rootDSE search');
  t.ok(Math.abs(offset - 10 * 60_000) < 2000, `offset about +10 min (${offset} ms)`);
  await t.rejects(readDcClockOffset('127.0.0.1', { port: 9, timeoutMs: 500 }), 'closed port rejects');
});

t.test("the clock check reads the first DC in preflight's own SRV order", async (t) => {
  const tc = await makeTestContext();
  const asked: string[] = [];
  const withDcs = (targets: SrvTarget[]): PreflightDeps => ({
    ...fakeDeps({ srv: { '_ldap._tcp.contoso.test': targets } }),
    clockOffset: async (host) => {
      asked.push(host);
      return -1500;
    },
  });
  const dc3: SrvTarget = { name: 'dc3.contoso.test', port: 389, priority: 0, weight: 100 };
  const cases = [
    { name: 'higher weight first', targets: [dc2, dc1], want: 'dc1.contoso.test' },
    { name: 'lower priority first', targets: [dc1, { ...dc2, priority: -1 }], want: 'dc2.contoso.test' },
    { name: 'a tie goes by name, as in preflight', targets: [dc3, dc1], want: 'dc1.contoso.test' },
  ];
  for (const c of cases) {
    asked.length = 0;
    t.same(await clockOffset(tc.ctx, withDcs(c.targets)), { offsetMs: -1500, source: c.want }, c.name);
    t.same(asked, [c.want], `${c.name}: only that DC is asked`);
  }
  // An empty answer is classified as preflight classifies it (agent/dc-locator.ts): the zone has no such record.
  await t.rejects(clockOffset(tc.ctx, withDcs([])), {
    kind: 'permanent',
    reason: 'dns-srv-missing',
    message: /has no _ldap\._tcp\.contoso\.test record/,
  });
});

t.test('the DC preflight found reaches the join through the state, while it is recent', async (t) => {
  const tc = await ctxWithSecret();
  let now = Date.parse('2026-12-06T05:00:00Z');
  tc.ctx.clock = { now: () => now, sleep: async () => undefined };
  const [outcome] = await runTasks([createPreflightTask(fakeDeps())], tc.ctx, {
    backoff: { initialMs: 1, factor: 1, maxDelayMs: 1, maxAttempts: 1, maxElapsedMs: 1000 },
  });
  t.equal(outcome?.status, 'ok');
  t.same(tc.ctx.state.facts.domainController, {
    host: 'dc1.contoso.test',
    address: '10.77.0.2',
    clockOffsetMs: 1200,
    foundAt: '2026-12-06T05:00:00.000Z',
  });
  t.equal(recentDomainController(tc.ctx), 'dc1.contoso.test', 'right after preflight: that DC');
  now += 10 * 60_000 + 1;
  t.equal(recentDomainController(tc.ctx), undefined, 'found more than 10 minutes ago: adcli discovers one');
  delete tc.ctx.state.facts.domainController?.foundAt;
  now -= 10 * 60_000;
  t.equal(recentDomainController(tc.ctx), undefined, 'a DC recorded without when (an older state file): not assumed');
});
