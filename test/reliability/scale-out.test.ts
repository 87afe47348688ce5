/**
 * Scale-out (issue 18): many first boots at once against the one lab DC,
 * each VM a lab client (its own namespaces, overlays, Azure fakes and VM
 * id) running the real agent's `provision`.
 *
 * - N VMs (50; RELIABILITY_SHORT=1: 10) boot at the same moment: all join,
 *   names unique and at most 15 characters, every keytab still accepted by
 *   the DC; wall time, the DC's errors and the agents' retries;
 * - two VMs forced to derive the same name (same IMDS name) boot together:
 *   both end joined, under different names;
 * - the same N VMs boot again with the DC stopped for the first 60 s:
 *   jittered retries converge, no storm; the retry timeline is printed;
 * - reused scale-set instance ids: an object stamped by a live VM means a
 *   new name; one stamped by a gone VM (idle past the stale limit) is taken
 *   over.
 */
import t from 'tap';
import { readFileSync, statSync } from 'node:fs';
import { dcExec, describeResult, lab, labEnv, labSkipReason } from '../lab/harness.js';
import {
  alternateComputerName,
  MAX_COMPUTER_NAME,
  primaryComputerName,
  STALE_AFTER_MS,
} from '../../src/tasks/domain-join/computer-name.js';
import { rowsFor, SHORT } from './rows.js';
import { firstBootBackoff } from '../../src/agent/backoff.js';
import {
  bootAll,
  bringDown,
  bringUp,
  dcComputers,
  dcCpuSeconds,
  dcDeleteComputers,
  deprovision,
  keytab,
  mapLimit,
  peakInWindow,
  seedCompute,
  timeline,
  vmIdOf,
  vmNo,
  type Boot,
  type Vm,
} from './scale-out-vms.js';

// SCALE_OUT_VMS overrides the count (a quick look while changing this file).
const N = Number(process.env.SCALE_OUT_VMS) || (SHORT ? 10 : 50);
const FLEET = Array.from({ length: N }, (_, i) => vmNo(100 + i));
const TWINS = [vmNo(160), vmNo(161)];
const REUSED = { live: vmNo(170), gone: vmNo(171) };
const DC_LATE_SEC = 60;
// 2 cores for N agents, N sssds and the DC: generous bounds, the measured times are reported.
const BOOT_BOUND_MS = (SHORT ? 10 : 30) * 60_000;

const sd = (xs: number[]): number => {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / Math.max(1, xs.length - 1));
};
/** Standard deviation, s, of the sum of the first k-1 first-boot delays: each uniform on [c/2, c], sd c/(2*sqrt(12)). */
const jitterSd = (k: number): number =>
  Math.sqrt(
    Array.from({ length: Math.max(0, k - 1) }, (_, i) => {
      const c = Math.min(firstBootBackoff.maxDelayMs, firstBootBackoff.initialMs * firstBootBackoff.factor ** i) / 1000;
      return (c / 2) ** 2 / 12;
    }).reduce((a, b) => a + b, 0),
  );
const fmt = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const summary = (boots: Boot[]): string =>
  boots
    .filter((b) => !b.ok)
    .map((b) => `${b.vm.client}: exit ${b.exitCode}: ${b.tasks.find((x) => x.status === 'failed')?.error ?? b.stderr.slice(-400)}`)
    .join('\n');

const skip = labSkipReason();
if (skip) {
  t.plan(0, skip);
} else {
  const rows = rowsFor(import.meta.filename ?? 'scale-out.test.ts');
  const env = labEnv();
  const dcLog = `${env.LAB_DIR}/dc/samba/log/samba.log`;
  const logSize = (): number => {
    try {
      return statSync(dcLog).size;
    } catch {
      return 0;
    }
  };
  const dcLogSince = (offset: number): string[] => {
    try {
      return readFileSync(dcLog).subarray(offset).toString('utf8').split('\n').filter(Boolean);
    } catch {
      return [];
    }
  };
  const nameOf = (vm: Vm): string =>
    primaryComputerName({
      configured: 'auto',
      vmScaleSetName: env.VMSS_NAME,
      vmName: `${env.VMSS_NAME}_${vm.client.slice(1)}`,
      hostname: '',
    }).name;
  const all = [...FLEET, ...TWINS, REUSED.live, REUSED.gone];
  const upped: Vm[] = [];

  t.before(async () => {
    const t0 = Date.now();
    // One after the other (client-up holds the lab's lock), config writes overlap the next one.
    for (const vm of all) {
      await bringUp(vm);
      upped.push(vm);
    }
    t.comment(`${all.length} client VMs up in ${fmt(Date.now() - t0)}`);
  });

  t.teardown(async () => {
    const ours = new Set(all.map(vmIdOf));
    const mine = [...(await dcComputers().catch(() => new Map<string, string>()))].filter(([, id]) => ours.has(id)).map(([n]) => n);
    await dcDeleteComputers([...mine, nameOf(REUSED.live), nameOf(REUSED.gone)]);
    await lab(['dc-start'], { timeoutMs: 90_000 }).catch(() => undefined);
    for (const vm of upped) await bringDown(vm);
  });

  t.test(`${N} first boots at once: all join, unique names of at most 15 characters`, async (t) => {
    const logAt = logSize();
    const cpu0 = await dcCpuSeconds();
    const t0 = Date.now();
    const boots = await bootAll(FLEET, BOOT_BOUND_MS);
    const wall = Date.now() - t0;
    const cpu = (await dcCpuSeconds()) - cpu0;
    const joined = boots.filter((b) => b.ok);
    t.equal(joined.length, N, `all ${N} provisioned\n${summary(boots)}`);
    const keytabs = await mapLimit(FLEET, 8, keytab);
    const names = keytabs.map((k) => k.name ?? '');
    const invalid = keytabs.map((k, i) => (k.valid ? '' : `${FLEET[i]!.client} (${k.name ?? 'none'}: ${k.why})`)).filter(Boolean);
    t.same(invalid, [], 'every keytab is still accepted by the DC (no VM ends unjoined)');
    t.equal(new Set(names).size, N, 'names unique');
    t.ok(
      names.every((n) => n.length > 0 && n.length <= MAX_COMPUTER_NAME),
      `names at most ${MAX_COMPUTER_NAME} characters: ${names.join(' ')}`,
    );
    const onDc = await dcComputers();
    const stamps = FLEET.map((vm, i) => onDc.get(names[i]!) === vmIdOf(vm));
    t.ok(stamps.every(Boolean), "each VM's object on the DC carries its own vmId");
    const retries = boots.flatMap((b) => b.retries);
    const dcLines = dcLogSince(logAt);
    const dcErrors = dcLines.filter((l) => /error|fail|NT_STATUS_(?!OK)/i.test(l));
    const durations = boots.map((b) => b.endedAt - b.startedAt).sort((a, b) => a - b);
    t.comment(
      `wall time ${fmt(wall)} for ${N} first boots; per boot: median ${fmt(durations[Math.floor(N / 2)]!)}, slowest ${fmt(durations.at(-1)!)}`,
    );
    t.comment(`DC: ${cpu.toFixed(1)} CPU s (${(cpu / N).toFixed(2)} per join), ${dcLines.length} log lines, ${dcErrors.length} errors`);
    for (const l of dcErrors.slice(0, 10)) t.comment(`  DC: ${l}`);
    t.comment(`retries: ${retries.length} (${[...new Set(retries.map((r) => r.error.slice(0, 100)))].slice(0, 5).join(' | ') || 'none'})`);
    const ok = joined.length === N && invalid.length === 0 && new Set(names).size === N && stamps.every(Boolean);
    rows.record({
      scenario: `${N} first boots at once`,
      expected: `all ${N} join, names unique and at most 15 characters, no VM unjoined`,
      happened: ok
        ? `all ${N} joined in ${fmt(wall)} under ${N} unique names (longest ${Math.max(...names.map((n) => n.length))} characters); every keytab accepted by the DC`
        : `${joined.length}/${N} provisioned, ${new Set(names).size} unique names, ${invalid.length} keytab(s) refused: ${summary(boots).slice(0, 300)}`,
      numbers: {
        vms: N,
        wallSeconds: Number((wall / 1000).toFixed(1)),
        medianBootSeconds: Number((durations[Math.floor(N / 2)]! / 1000).toFixed(1)),
        dcCpuSecondsPerJoin: Number((cpu / N).toFixed(2)),
        dcErrors: dcErrors.length,
        retries: retries.length,
      },
      ok,
    });
  });

  t.test('two VMs that derive the same name at the same moment both join, under different names', async (t) => {
    // The same scale-set name and instance id in IMDS (two scale sets of one name in two resource groups).
    for (const vm of TWINS) await seedCompute(vm, { name: 'dsvmpool_7777', vmScaleSetName: 'dsvmpool' });
    const primary = primaryComputerName({ configured: 'auto', vmScaleSetName: 'dsvmpool', vmName: 'dsvmpool_7777', hostname: '' }).name;
    const boots = await bootAll(TWINS, BOOT_BOUND_MS);
    t.ok(
      boots.every((b) => b.ok),
      `both provisioned\n${summary(boots)}`,
    );
    const k = await Promise.all(TWINS.map(keytab));
    const names = k.map((x) => x.name ?? '');
    t.not(names[0], names[1], `different names: ${names.join(', ')}`);
    t.ok(names.includes(primary), `one of them has the derived name ${primary}`);
    t.ok(
      k.every((x) => x.valid),
      `both keytabs accepted by the DC: ${k.map((x) => x.why || 'ok').join('; ')}`,
    );
    const onDc = await dcComputers();
    const stamped = TWINS.every((vm, i) => onDc.get(names[i]!) === vmIdOf(vm));
    t.ok(stamped, "each name's object carries its own VM's id");
    const lost = boots.flatMap((b) => b.retries.filter((r) => r.task === 'domain-join').map((r) => `${b.vm.client}: ${r.error}`));
    for (const l of lost) t.comment(`  ${l.slice(0, 200)}`);
    const ok = boots.every((b) => b.ok) && names[0] !== names[1] && k.every((x) => x.valid) && stamped;
    rows.record({
      scenario: 'same-name race',
      expected: 'two VMs deriving the same name at once both end joined, under different names',
      happened: ok
        ? `both joined: ${names.join(' and ')}${lost.length ? `; the one that lost the name retried (${lost.length} retry)` : ''}`
        : `names ${names.join(', ')}; keytabs ${k.map((x) => (x.valid ? 'valid' : `refused (${x.why})`)).join(', ')}; ${summary(boots).slice(0, 300)}`,
      numbers: { vms: 2, joinRetries: lost.length },
      ok,
    });
  });

  t.test(`the DC starts ${DC_LATE_SEC} s late: jittered retries converge without a storm`, async (t) => {
    await mapLimit(FLEET, 4, deprovision);
    const stop = await lab(['dc-stop'], { timeoutMs: 60_000 });
    t.equal(stop.exitCode, 0, describeResult('dc-stop', stop));
    const t0 = Date.now();
    const run = bootAll(FLEET, BOOT_BOUND_MS + DC_LATE_SEC * 1000);
    await new Promise((r) => setTimeout(r, DC_LATE_SEC * 1000));
    const started = await lab(['dc-start'], { timeoutMs: 90_000 });
    t.equal(started.exitCode, 0, describeResult('dc-start', started));
    const dcUp = Date.now();
    const boots = await run;
    const done = Date.now();
    const joined = boots.filter((b) => b.ok).length;
    t.equal(joined, N, `all ${N} joined after the DC came up\n${summary(boots)}`);
    const retries = boots.flatMap((b) => b.retries);
    const perVm = boots.map((b) => b.retries.length);
    const lastDone = Math.max(...boots.map((b) => b.endedAt));
    t.comment(`retry timeline (retries per 5 s since the boots started; DC started at +${((dcUp - t0) / 1000).toFixed(0)} s):`);
    for (const line of timeline(retries, t0, 5, { 'DC up': dcUp, 'last VM joined': lastDone })) t.comment(`  ${line}`);
    // A storm is the fleet coming back in lock-step: every VM's k-th retry in the same second, again
    // and again, and all of them reaching the DC together once it is up. Equal jitter
    // (src/agent/backoff.ts) makes each VM's delays independent, so the time from a VM's first to
    // its K-th failed attempt varies from VM to VM by a known amount; in lock-step it would not
    // vary at all (only by the execution noise). Measured per VM, the boots' start skew drops out.
    // The peak per second is printed, not asserted: with 10 VMs whose third retries fall in a 2 s
    // window, 6 in one second is an ordinary draw, not a storm.
    // Each VM's retries of the task that waited for the DC (one task's attempts follow one schedule).
    const byVm = boots.map((b) => {
      const counts = new Map<string, number>();
      for (const r of b.retries) counts.set(r.task, (counts.get(r.task) ?? 0) + 1);
      const waiting = [...counts].sort((x, y) => y[1] - x[1])[0]?.[0];
      return b.retries.filter((r) => r.task === waiting).sort((x, y) => x.at - y.at);
    });
    const K = Math.min(6, ...byVm.map((r) => r.length));
    const spreads = Array.from({ length: Math.max(0, K - 1) }, (_, i) => sd(byVm.map((r) => r[i + 1]!.at - r[0]!.at)) / 1000);
    const expected = jitterSd(K);
    const peak = peakInWindow(retries, 1000);
    const arrivals = peakInWindow(
      boots.map((b) => ({ at: b.endedAt, task: '', attempt: 0, delaySec: 0, error: '' })),
      1000,
    );
    const bound = Math.ceil(N / 2);
    const afterUp = boots.map((b) => b.endedAt - dcUp).sort((a, b) => a - b);
    t.comment(
      `retries: ${retries.length} in all, per VM ${Math.min(...perVm)}-${Math.max(...perVm)}; at most ${peak} in any 1 s (lock-step: ${N}); ` +
        `at most ${arrivals} VMs joined in the same second; all joined ${fmt(done - dcUp)} after the DC came up (median ${fmt(afterUp[Math.floor(N / 2)]!)})`,
    );
    t.comment(
      `spread across the fleet (standard deviation) of the time from a VM's first failed attempt to its k-th, k = 2..${K}: ` +
        `${spreads.map((x) => x.toFixed(2)).join(', ')} s (the backoff policy's jitter alone: ${expected.toFixed(2)} s at k = ${K}; lock-step: 0)`,
    );
    t.ok(K >= 5, `every VM failed at least 5 times while the DC was down (fewest: ${K}), enough to see the jitter`);
    // A quarter of the policy's own spread: a sample of 10 falls below it with p < 1e-4 (chi-square, 9 degrees of freedom).
    const decorrelated = K >= 5 && spreads.at(-1)! >= expected / 4;
    t.ok(
      decorrelated,
      `no lock-step: the fleet's retries drift apart (spread ${spreads.at(-1)?.toFixed(2)} s at k = ${K}, at least ${(expected / 4).toFixed(2)} s)`,
    );
    const ok = joined === N && decorrelated && arrivals <= bound && Math.max(...perVm) <= 12;
    rows.record({
      scenario: `DC ${DC_LATE_SEC} s late, ${N} first boots`,
      expected: 'jittered retries converge, no storm',
      happened: ok
        ? `all ${N} joined within ${fmt(done - dcUp)} of the DC's start; ${retries.length} retries (${Math.max(...perVm)} at most per VM); retry spread ${spreads.at(-1)?.toFixed(1)} s across the fleet by the ${K}th failure, at most ${arrivals} VMs joined in one second`
        : `${joined}/${N} joined; ${retries.length} retries, retry spread ${spreads.at(-1)?.toFixed(2)} s by the ${K}th failure (lock-step below ${(expected / 4).toFixed(2)} s), ${arrivals} VMs joined in one second; ${summary(boots).slice(0, 300)}`,
      numbers: {
        vms: N,
        retries: retries.length,
        maxRetriesPerVm: Math.max(...perVm),
        peakRetriesPerSecond: peak,
        retrySpreadSeconds: Number((spreads.at(-1) ?? 0).toFixed(2)),
        peakJoinsPerSecond: arrivals,
        secondsToAllJoinedAfterDcUp: Number(((done - dcUp) / 1000).toFixed(1)),
      },
      ok,
    });
  });

  t.test('reused scale-set instance ids: a live holder means a new name, a gone one is taken over', async (t) => {
    const live = nameOf(REUSED.live);
    const gone = nameOf(REUSED.gone);
    const sam = `${env.LAB_DIR}/dc/samba/private/sam.ldb`;
    // The previous VMs of these instance ids, each with its own vmId stamp.
    for (const [name, vmId] of [
      [live, '11111111-2222-3333-4444-555555555555'],
      [gone, '66666666-7777-8888-9999-000000000000'],
    ] as const) {
      const c = await dcExec([
        'samba-tool',
        'computer',
        'create',
        name,
        `--computerou=${env.JOIN_OU.replace(`,${env.BASE_DN}`, '')}`,
        `--description=dsvm-agent vmId=${vmId}`,
        '-H',
        sam,
      ]);
      t.equal(c.exitCode, 0, describeResult(`samba-tool computer create ${name}`, c));
    }
    // The gone VM's object: idle past the stale limit (its password last set 60 days ago). Samba sets
    // pwdLastSet to a time only under its bypass control (DSDB_CONTROL_PASSWORD_BYPASS_LAST_SET_OID,
    // made for upgrades), on the DC's own database.
    const old = BigInt(Date.now() - STALE_AFTER_MS - 15 * 24 * 3600_000) * 10_000n + 116444736000000000n;
    const backdate = await dcExec(['ldbmodify', '-H', sam, '--controls=local_oid:1.3.6.1.4.1.7165.4.3.20:0'], {
      input: `dn: CN=${gone},${env.JOIN_OU}\nchangetype: modify\nreplace: pwdLastSet\npwdLastSet: ${old}\n-\n`,
    });
    t.equal(backdate.exitCode, 0, describeResult('backdate the gone VM', backdate));
    const check = await dcExec(['ldbsearch', '-H', sam, '-b', `CN=${gone},${env.JOIN_OU}`, '-s', 'base', 'pwdLastSet']);
    t.match(check.stdout, new RegExp(`pwdLastSet: ${old}`), 'the gone VM last set its password 60 days ago');
    const boots = await bootAll([REUSED.live, REUSED.gone], BOOT_BOUND_MS);
    t.ok(
      boots.every((b) => b.ok),
      `both provisioned\n${summary(boots)}`,
    );
    const [kLive, kGone] = await Promise.all([keytab(REUSED.live), keytab(REUSED.gone)]);
    const alt = alternateComputerName(live, vmIdOf(REUSED.live), 1);
    t.equal(kLive.name, alt, `live holder of ${live}: joined under the alternate ${alt}`);
    t.equal(kGone.name, gone, `gone holder of ${gone}: name taken over`);
    t.ok(kLive.valid && kGone.valid, 'both keytabs accepted by the DC');
    const onDc = await dcComputers();
    t.equal(onDc.get(live), '11111111-2222-3333-4444-555555555555', "the live VM's object is untouched");
    t.equal(onDc.get(gone), vmIdOf(REUSED.gone), 'the taken-over object carries the new VM id');
    const ok =
      boots.every((b) => b.ok) &&
      kLive.name === alt &&
      kGone.name === gone &&
      kLive.valid &&
      kGone.valid &&
      onDc.get(gone) === vmIdOf(REUSED.gone);
    rows.record({
      scenario: 'reused scale-set instance ids',
      expected: 'an object stamped by a live VM means a new name; one stamped by a gone VM is taken over',
      happened: ok
        ? `live holder: joined as ${alt} (${live} untouched); gone holder (idle 60 days): ${gone} taken over and re-stamped`
        : `live case joined as ${kLive.name ?? 'nothing'} (want ${alt}), gone case as ${kGone.name ?? 'nothing'} (want ${gone}); ${summary(boots).slice(0, 300)}`,
      numbers: { vms: 2 },
      ok,
    });
  });
}
