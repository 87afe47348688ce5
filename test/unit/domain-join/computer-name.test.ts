import t from 'tap';
import {
  alternateComputerName,
  candidateNames,
  fitName,
  judgeExisting,
  MAX_COMPUTER_NAME,
  primaryComputerName,
  sanitizeName,
  STALE_AFTER_MS,
  vmIdStamp,
  type NameSources,
} from '../../../src/tasks/domain-join/computer-name.js';
import { computerNamePattern } from '../../../src/agent/config-schema.js';

const VM_A = '6feba0c8-089c-469a-9eea-6bf1e426356c';
const VM_B = '0b6d4f7e-1111-4c2e-9a55-2f5d8e7c9a01';

const derivation: { name: string; src: NameSources; want?: string; source: string; shortened?: boolean }[] = [
  {
    name: 'explicit name is kept (upper case)',
    src: { configured: 'dsvm-gpu-07', hostname: 'whatever' },
    want: 'DSVM-GPU-07',
    source: 'explicit',
  },
  { name: 'short hostname as is', src: { configured: 'auto', hostname: 'dsvm01' }, want: 'DSVM01', source: 'hostname' },
  {
    name: 'FQDN hostname uses its first label',
    src: { configured: 'auto', hostname: 'dsvm01.contoso.com' },
    want: 'DSVM01',
    source: 'hostname',
  },
  {
    name: 'exactly 15 characters fits',
    src: { configured: 'auto', hostname: 'abcdefghijklmno' },
    want: 'ABCDEFGHIJKLMNO',
    source: 'hostname',
  },
  {
    name: '16 characters gets head + hash',
    src: { configured: 'auto', hostname: 'abcdefghijklmnop' },
    source: 'hostname',
    shortened: true,
  },
  {
    name: 'the lab 20-character hostname',
    src: { configured: 'auto', hostname: 'dsvm-lab-client-0001' },
    source: 'hostname',
    shortened: true,
  },
  { name: '22-character hostname', src: { configured: 'auto', hostname: 'datascience-vm-team-01' }, source: 'hostname', shortened: true },
  { name: 'underscores and dots become dashes', src: { configured: 'auto', hostname: 'my_vm' }, want: 'MY-VM', source: 'hostname' },
  {
    name: 'all-digit hostname gets a letter prefix',
    src: { configured: 'auto', hostname: '12345' },
    want: 'DSVM-12345',
    source: 'hostname',
  },
  {
    name: 'uniform VMSS: name + base36 instance id',
    src: { configured: 'auto', vmScaleSetName: 'dsvmpool', vmName: 'dsvmpool_3', hostname: 'dsvmpool000003' },
    want: 'DSVMPOOL-3',
    source: 'vmss',
  },
  {
    name: 'uniform VMSS: instance 1295 is base36 ZZ',
    src: { configured: 'auto', vmScaleSetName: 'dsvmpool', vmName: 'dsvmpool_1295', hostname: 'x' },
    want: 'DSVMPOOL-ZZ',
    source: 'vmss',
  },
  {
    name: 'flexible VMSS: 8 hex digits as base36',
    src: { configured: 'auto', vmScaleSetName: 'pool', vmName: 'pool_1a2b3c4d', hostname: 'x' },
    want: `POOL-${parseInt('1a2b3c4d', 16).toString(36).toUpperCase()}`,
    source: 'vmss',
  },
  {
    name: 'long VMSS name keeps the whole instance suffix',
    src: { configured: 'auto', vmScaleSetName: 'datascience-gpu-pool', vmName: 'datascience-gpu-pool_12', hostname: 'x' },
    source: 'vmss',
    shortened: true,
  },
  {
    name: 'VM name not of the scale set falls back to the hostname',
    src: { configured: 'auto', vmScaleSetName: 'dsvmpool', vmName: 'dsvm-lab-client-0001', hostname: 'labvm' },
    want: 'LABVM',
    source: 'hostname',
  },
];

t.test('primary name derivation', async (t) => {
  for (const c of derivation) {
    const got = primaryComputerName(c.src);
    t.ok(got.name.length <= MAX_COMPUTER_NAME, `${c.name}: at most 15 characters (${got.name})`);
    t.match(got.name, computerNamePattern, `${c.name}: valid NetBIOS characters`);
    t.notMatch(got.name, /^[0-9]+$/, `${c.name}: not all digits`);
    t.equal(got.source, c.source, `${c.name}: source`);
    if (c.want !== undefined) t.equal(got.name, c.want, `${c.name}: name`);
    t.equal(got.shortened, c.shortened ?? false, `${c.name}: shortened flag`);
  }
});

t.test('shortening is deterministic and never silent truncation', async (t) => {
  const a = primaryComputerName({ configured: 'auto', hostname: 'dsvm-lab-client-0001' }).name;
  const b = primaryComputerName({ configured: 'auto', hostname: 'dsvm-lab-client-0002' }).name;
  t.equal(a, primaryComputerName({ configured: 'auto', hostname: 'dsvm-lab-client-0001' }).name, 'same input, same name');
  t.not(a, b, 'names that differ only past character 15 still differ');
  t.not(a, 'DSVM-LAB-CLIENT', 'not the plain 15-character truncation');
  const vmss = primaryComputerName({
    configured: 'auto',
    vmScaleSetName: 'datascience-gpu-pool',
    vmName: 'datascience-gpu-pool_12',
    hostname: 'x',
  }).name;
  t.match(vmss, /-C$/, 'instance suffix kept whole at the end');
  t.equal(fitName(sanitizeName('a'.repeat(40)), '-ZZZZZZZ').name.length, 15, 'a 7-character suffix still fits');
});

t.test('alternates', async (t) => {
  const cases = [
    { name: 'short primary keeps it whole', primary: 'DSVMPOOL-3' },
    { name: 'shortened primary', primary: primaryComputerName({ configured: 'auto', hostname: 'dsvm-lab-client-0001' }).name },
  ];
  for (const c of cases) {
    const alts = [1, 2, 3].map((k) => alternateComputerName(c.primary, VM_A, k));
    for (const a of alts) {
      t.ok(a.length <= 15, `${c.name}: ${a} fits`);
      t.match(a, computerNamePattern, `${c.name}: ${a} is valid`);
    }
    t.equal(new Set(alts).size, 3, `${c.name}: alternates differ from each other`);
    t.notOk(alts.includes(c.primary), `${c.name}: alternates differ from the primary`);
    t.not(
      alternateComputerName(c.primary, VM_A, 1),
      alternateComputerName(c.primary, VM_B, 1),
      `${c.name}: two VMs get different alternates`,
    );
    t.equal(
      alternateComputerName(c.primary, VM_A, 1),
      alternateComputerName(c.primary, VM_A.toUpperCase(), 1),
      `${c.name}: stable across vmId case`,
    );
  }
  t.same(
    candidateNames({ name: 'FIXED', source: 'explicit', from: 'fixed', shortened: false }, VM_A),
    ['FIXED'],
    'explicit names have no alternates',
  );
  t.equal(
    candidateNames({ name: 'DSVM01', source: 'hostname', from: 'dsvm01', shortened: false }, VM_A).length,
    6,
    'auto: primary + 5 alternates',
  );
});

t.test('collision rule', async (t) => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  const day = 24 * 3600_000;
  const cases: { name: string; existing: Parameters<typeof judgeExisting>[0]; explicit?: boolean; use: boolean; why: string }[] = [
    { name: 'no object: free', existing: undefined, use: true, why: 'free' },
    { name: 'stamped with our vmId: ours', existing: { description: vmIdStamp(VM_A), pwdLastSet: now - day }, use: true, why: 'ours' },
    { name: 'our stamp in upper case is still ours', existing: { description: vmIdStamp(VM_A).toUpperCase() }, use: true, why: 'ours' },
    {
      name: 'another live VM (password set yesterday): in use',
      existing: { description: vmIdStamp(VM_B), pwdLastSet: now - day },
      use: false,
      why: 'in-use',
    },
    {
      name: 'another VM, idle 29 days (within renewal): in use',
      existing: { description: vmIdStamp(VM_B), pwdLastSet: now - 29 * day },
      use: false,
      why: 'in-use',
    },
    {
      name: 'another VM, password old but logged on recently: in use',
      existing: { description: vmIdStamp(VM_B), pwdLastSet: now - 90 * day, lastLogon: now - 2 * day },
      use: false,
      why: 'in-use',
    },
    {
      name: 'another VM, idle past the stale limit: taken over',
      existing: { description: vmIdStamp(VM_B), pwdLastSet: now - STALE_AFTER_MS - day },
      use: true,
      why: 'stale',
    },
    {
      name: 'another VM, no timestamps: in use (cannot prove stale)',
      existing: { description: vmIdStamp(VM_B) },
      use: false,
      why: 'in-use',
    },
    {
      name: 'unstamped object, auto name, recent: in use',
      existing: { description: 'finance laptop', pwdLastSet: now - day },
      use: false,
      why: 'in-use',
    },
    { name: 'unstamped object, auto name, stale: taken over', existing: { pwdLastSet: now - 100 * day }, use: true, why: 'stale' },
    {
      name: 'unstamped object, explicit name: the admin chose it',
      existing: { pwdLastSet: now - day },
      explicit: true,
      use: true,
      why: 'explicit',
    },
    {
      name: 'explicit name held by another live VM: not taken',
      existing: { description: vmIdStamp(VM_B), pwdLastSet: now - day },
      explicit: true,
      use: false,
      why: 'in-use',
    },
  ];
  for (const c of cases) {
    const v = judgeExisting(c.existing, VM_A, now, c.explicit ?? false);
    t.equal(v.use, c.use, `${c.name}: use`);
    t.equal(v.why, c.why, `${c.name}: why`);
  }
});
