/**
 * `dsvm-agent sweep` against the real Samba AD DC: five client VMs of the
 * pool join (adcli join, each stamped with its own vmId), two "vanish" (the
 * scale set's VM list in the ARM fake leaves them out). `sweep --dry-run`
 * lists exactly those two and changes nothing; on any VM but the sweeper
 * (the live one with the lowest vmId) sweep deletes nothing; on the sweeper
 * it removes exactly those two from the DC. Without ARM rights (403) it
 * falls back to the machine-password age: all five are fresh, none stale.
 */
import t from 'tap';
import { PROJECT_ROOT, clientExec, dcExec, describeResult, fakesUrls, lab, labEnv, labSkipReason, readLabSecret } from './harness.js';

const AGENT = `${PROJECT_ROOT}/bin/dsvm-agent`;
const CONFIG = '/etc/dsvm-agent/sweep-lab.yaml';
const PREFIX = 'DSVMSWP-';
const VMS = [1, 2, 3, 4, 5].map((i) => ({
  client: `c${10 + i}`,
  ip: `10.77.0.${20 + i}`,
  hostname: `dsvm-sweep-00${10 + i}`,
  computer: `${PREFIX}${i}`,
}));

interface Report {
  source: string;
  sweeper?: string;
  sweeping: boolean;
  stale: Array<{ name: string; vmId: string }>;
  live: Array<{ name: string }>;
  deleted: string[];
  failed: unknown[];
}

const skip = labSkipReason();
if (skip) {
  t.plan(0, skip);
} else {
  const env = labEnv();
  const vmIdOf = (client: string): string => (labEnv()[`CLIENT_VMID_${client.toUpperCase()}`] ?? '').toLowerCase();
  const onDc = async (): Promise<string[]> => {
    const r = await dcExec([
      'ldbsearch',
      '-H',
      `${env.LAB_DIR}/dc/samba/private/sam.ldb`,
      `(&(objectClass=computer)(sAMAccountName=${PREFIX}*))`,
      'sAMAccountName',
    ]);
    if (r.exitCode !== 0) throw new Error(describeResult('ldbsearch', r));
    return r.stdout
      .split('\n')
      .filter((l) => l.startsWith('sAMAccountName: '))
      .map((l) => l.slice('sAMAccountName: '.length).replace(/\$$/, ''))
      .sort();
  };
  const control = async (client: string, route: string, body: unknown): Promise<void> => {
    const url = new URL(route, fakesUrls(client).control).toString();
    const r = await clientExec(client, [
      'node',
      '--input-type=module',
      '-e',
      `const r = await fetch(${JSON.stringify(url)}, { method: 'POST', headers: { 'content-type': 'application/json' }, body: process.argv[1] }); if (!r.ok) process.exit(1);`,
      JSON.stringify(body),
    ]);
    if (r.exitCode !== 0) throw new Error(describeResult(`control ${route}`, r));
  };
  const sweep = async (client: string, ...args: string[]): Promise<Report> => {
    const r = await clientExec(client, [AGENT, '--config', CONFIG, 'sweep', '--json', ...args], { timeoutMs: 120_000 });
    if (r.exitCode !== 0) throw new Error(describeResult(`sweep ${args.join(' ')} on ${client}`, r));
    return JSON.parse(r.stdout) as Report;
  };

  t.before(async () => {
    for (const vm of VMS) {
      const up = await lab(['client-up', vm.client, vm.ip, vm.hostname], { timeoutMs: 120_000 });
      if (up.exitCode !== 0) throw new Error(describeResult('client-up', up));
      const join = await clientExec(
        vm.client,
        [
          'adcli',
          'join',
          `--domain=${env.DOMAIN}`,
          `--login-user=${env.JOIN_USER}`,
          '--stdin-password',
          `--computer-name=${vm.computer}`,
          `--host-fqdn=${vm.computer.toLowerCase()}.${env.DOMAIN}`,
          `--domain-ou=${env.JOIN_OU}`,
          `--description=dsvm-agent vmId=${vmIdOf(vm.client)}`,
        ],
        { input: `${readLabSecret('join-password')}\n` },
      );
      if (join.exitCode !== 0) throw new Error(describeResult(`adcli join ${vm.computer}`, join));
      const urls = fakesUrls(vm.client);
      const config = [
        `azure: { imdsEndpoint: "${urls.imds}", managementEndpoint: "${urls.arm}", imdsAccess: { restrict: false } }`,
        `domain: { name: ${env.DOMAIN}, joinUser: ${env.JOIN_USER}, joinPassword: { file: /etc/dsvm-agent/join-password }, computerOu: "${env.JOIN_OU}" }`,
        `sweep: { namePrefix: ${PREFIX} }`,
      ].join('\n');
      const w = await clientExec(
        vm.client,
        [
          'bash',
          '-c',
          `set -e; mkdir -p /etc/dsvm-agent; umask 077; read -r p; printf '%s\\n' "$p" >/etc/dsvm-agent/join-password; cat >${CONFIG}`,
        ],
        {
          input: `${readLabSecret('join-password')}\n${config}\n`,
        },
      );
      if (w.exitCode !== 0) throw new Error(describeResult('config', w));
    }
  });

  t.teardown(async () => {
    for (const vm of VMS) {
      await clientExec(
        vm.client,
        ['adcli', 'delete-computer', `--domain=${env.DOMAIN}`, `--login-user=${env.JOIN_USER}`, '--stdin-password', vm.computer],
        {
          input: `${readLabSecret('join-password')}\n`,
        },
      ).catch(() => undefined);
      await lab(['client-down', vm.client]).catch(() => undefined);
    }
  });

  t.test('two of five vanish: dry run lists them, the sweeper removes exactly them', async (t) => {
    const all = VMS.map((v) => v.computer).sort();
    t.same(await onDc(), all, 'before: all five on the DC');
    const vanished = [VMS[1]!, VMS[3]!];
    const live = VMS.filter((v) => !vanished.includes(v));
    const sweeper = [...live].sort((a, b) => (vmIdOf(a.client) < vmIdOf(b.client) ? -1 : 1))[0]!;
    const other = live.find((v) => v !== sweeper)!;
    // The scale set as ARM lists it, in every live VM's fakes (each VM asks its own).
    for (const vm of live)
      await control(vm.client, '/seed', {
        scaleSets: [
          {
            name: env.VMSS_NAME,
            subscriptionId: env.SUBSCRIPTION_ID,
            resourceGroup: env.RESOURCE_GROUP,
            vms: live.map((v) => ({ instanceId: v.client.slice(1), vmId: vmIdOf(v.client) })),
          },
        ],
      });
    const dry = await sweep(sweeper.client, '--dry-run');
    t.equal(dry.source, 'arm');
    t.same(dry.stale.map((s) => s.name).sort(), vanished.map((v) => v.computer).sort(), 'dry run lists exactly the two vanished');
    t.equal(dry.sweeper, vmIdOf(sweeper.client), 'the sweeper is the live VM with the lowest vmId');
    t.ok(dry.sweeping);
    t.same(dry.deleted, []);
    t.same(await onDc(), all, 'dry run: all five still on the DC');
    const notMine = await sweep(other.client);
    t.notOk(notMine.sweeping, `${other.client} is not the sweeper`);
    t.same(notMine.deleted, []);
    t.same(await onDc(), all, 'a VM that is not the sweeper deleted nothing');
    const done = await sweep(sweeper.client);
    t.same(done.deleted.sort(), vanished.map((v) => v.computer).sort(), 'the sweeper deleted the two');
    t.same(done.failed, []);
    t.same(await onDc(), live.map((v) => v.computer).sort(), 'exactly the three live ones remain on the DC');
    // Without ARM rights: the password-age fallback; every remaining password is minutes old.
    await control(sweeper.client, '/fail', {
      route: 'arm.listScaleSetVms',
      status: 403,
      body: { error: { code: 'AuthorizationFailed', message: 'no Reader' } },
    });
    const fallback = await sweep(sweeper.client, '--dry-run');
    t.equal(fallback.source, 'password-age', '403 from ARM: machine-password age decides');
    t.same(fallback.stale, [], 'fresh passwords: nothing stale');
    t.equal(fallback.live.length, 3);
  });
}
