/**
 * Benchmark: Terminate → approval and Preempt → approval in the lab, against
 * the 30 s a Preempt allows, as a ratio (the budget is the baseline: the
 * platform deletes a Spot VM 30 s after the event appears).
 *
 * On the host (root, lab up):   npx tsx bench/scale-in.ts [--rounds N]
 * Each round is one whole scale-in of a lab client VM (test/lab/scale-in-vm.ts):
 * adcli join + sssd + the DNS record + the stand-in mount + handles (untimed),
 * the daemon started, the event posted through the IMDS fake (timed from
 * here to the approval the fake records), the daemon stopped. The daemon
 * polls every second (scheduledEvents.pollSec: 1), so up to 1 s of each time
 * is the poll interval (10 s by default in production).
 */
import * as vmLab from '../test/lab/scale-in-vm.js';

const args = process.argv.slice(2);
const i = args.indexOf('--rounds');
const rounds = Number(i >= 0 ? args[i + 1] : '10');
const BUDGET_MS = 30_000;
const VM: vmLab.ScaleInVm = { client: 'c9', ip: '10.77.0.19', hostname: 'dsvm-bench-0009', computer: 'DSVM-BNCH-09' };
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  await vmLab.bringUp(VM);
  try {
    for (const type of ['Terminate', 'Preempt'] as const) {
      const times: number[] = [];
      for (let r = 0; r < rounds; r++) {
        await vmLab.prepare(VM, `bench-${type}-${r}`);
        await vmLab.startDaemon(VM);
        const id = `bench-${type}-${process.pid}-${r}`;
        const posted = await vmLab.postEvent(VM, id, type, type === 'Preempt' ? 30 : 300);
        const approved = await vmLab.waitApproval(VM, id, 60_000);
        await vmLab.stopDaemon(VM);
        if (approved < 0) throw new Error(`${type} round ${r}: no approval within 60 s\n${await vmLab.daemonLog(VM)}`);
        times.push(approved - posted);
      }
      const m = median(times);
      console.log(
        `${type.padEnd(9)} -> approval: median ${m} ms of ${rounds} (min ${Math.min(...times)}, max ${Math.max(...times)}); ` +
          `ratio to a Preempt's 30 s: ${(m / BUDGET_MS).toFixed(3)}`,
      );
    }
  } finally {
    await vmLab.bringDown(VM);
  }
}

await main();
