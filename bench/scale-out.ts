/**
 * Benchmark: the DC's CPU seconds per join when many VMs first-boot at once,
 * against the same for one VM booting alone, side by side in one lab run.
 * Each VM is a lab client running the real `dsvm-agent provision`; the DC's
 * CPU time is read from /proc (every process in its namespace, reaped
 * children included) before and after.
 *
 * On the host (root, lab up):   npx tsx bench/scale-out.ts [--vms N]   (default 10)
 */
import {
  bootAll,
  bringDown,
  bringUp,
  dcComputers,
  dcCpuSeconds,
  dcDeleteComputers,
  deprovision,
  vmIdOf,
  vmNo,
} from '../test/reliability/scale-out-vms.js';
import { labSkipReason } from '../test/lab/harness.js';

const args = process.argv.slice(2);
const i = args.indexOf('--vms');
const n = i >= 0 ? Number(args[i + 1]) : 10;
if (!Number.isInteger(n) || n < 2 || n > 99) throw new Error('--vms wants a whole number from 2 to 99');
const skip = labSkipReason();
if (skip) throw new Error(skip);

const vms = Array.from({ length: n }, (_, k) => vmNo(200 + k));
const upped: typeof vms = [];
try {
  for (const vm of vms) {
    await bringUp(vm);
    upped.push(vm);
  }
  // Alone: the first VM boots with nothing else going on, then leaves again.
  let cpu0 = await dcCpuSeconds();
  let t0 = Date.now();
  const [solo] = await bootAll([vms[0]!], 600_000);
  const aloneCpu = (await dcCpuSeconds()) - cpu0;
  const aloneWall = Date.now() - t0;
  if (!solo?.ok) throw new Error(`the lone first boot failed: ${solo?.stderr.slice(-500)}`);
  await deprovision(vms[0]!);
  // All at once.
  cpu0 = await dcCpuSeconds();
  t0 = Date.now();
  const boots = await bootAll(vms, 30 * 60_000);
  const allCpu = (await dcCpuSeconds()) - cpu0;
  const allWall = Date.now() - t0;
  const ok = boots.filter((b) => b.ok).length;
  if (ok !== n) throw new Error(`${n - ok} of ${n} concurrent first boots failed`);
  const perJoin = allCpu / n;
  process.stdout.write(
    `scale-out: one first boot alone: DC ${aloneCpu.toFixed(2)} CPU s, wall ${(aloneWall / 1000).toFixed(1)} s\n` +
      `scale-out: ${n} at once: DC ${allCpu.toFixed(2)} CPU s = ${perJoin.toFixed(2)} per join, wall ${(allWall / 1000).toFixed(1)} s, ` +
      `${boots.reduce((s, b) => s + b.retries.length, 0)} retries\n` +
      `scale-out: DC CPU per join, ${n} at once vs alone: ${(perJoin / aloneCpu).toFixed(2)} x\n`,
  );
} finally {
  const ours = new Set(upped.map(vmIdOf));
  const names = [...(await dcComputers().catch(() => new Map<string, string>()))].filter(([, id]) => ours.has(id)).map(([name]) => name);
  await dcDeleteComputers(names);
  for (const vm of upped) await bringDown(vm);
}
