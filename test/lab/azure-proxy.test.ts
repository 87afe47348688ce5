/**
 * azure.proxy through a real forward proxy (issue 19): Debian's tinyproxy
 * and the Azure fakes in a network namespace this test makes itself
 * (`unshare --net --mount`, gone with its process; it does not use the lab's
 * namespaces, so it also runs alone: `npx tap test/lab/azure-proxy.test.ts`).
 * The agent's own calls (azure-proxy-driver.ts) must go through the proxy,
 * as tinyproxy's own log shows (its CONNECT lines name the fake's host:port),
 * for Key Vault, ARM (listKeys and the sweep's VM list) and Files REST;
 * never for IMDS (the managed identity's tokens, instance metadata,
 * Scheduled Events), which the IMDS fake must have answered directly; and a
 * host NO_PROXY names must bypass it. Root and tinyproxy (.ci/apt-packages.txt).
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { ProxyRound, ProxyScenario, ProxyRoundResult } from './azure-proxy-ns.js';

const PROXY = 'http://127.0.0.1:3128';
/** Nothing listens there in the namespace: a proxy that is configured but down. */
const DEAD = 'http://127.0.0.1:9';

const ROUNDS: ProxyRound[] = [
  { name: 'HTTPS_PROXY of the unit', env: { HTTPS_PROXY: PROXY } },
  { name: 'azure.proxy wins over the environment', env: { HTTPS_PROXY: DEAD, https_proxy: DEAD }, proxy: PROXY },
  {
    name: 'NO_PROXY names the vault and the Files host:port',
    env: { HTTPS_PROXY: PROXY, NO_PROXY: 'example.com, .vault.localhost,{files}' },
  },
  { name: 'NO_PROXY names the IMDS host only (IMDS bypasses anyway)', env: { https_proxy: PROXY, no_proxy: 'example.com' } },
  { name: 'azure.proxy: none', env: { HTTPS_PROXY: DEAD }, proxy: 'none' },
  { name: 'the proxy is down', env: {}, proxy: DEAD },
];

const SDK_CALLS = ['keyVault.getSecret', 'arm.listKeys', 'arm.listScaleSetVms', 'files.shareStats', 'files.createDirectory'];
const IMDS_CALLS = ['imds.instance', 'imds.scheduledEvents'];

function scenario(): Promise<ProxyScenario> {
  const child = spawn(
    'unshare',
    ['--net', '--mount', '--propagation', 'private', '--', process.execPath, '--import', 'tsx', path.resolve('test/lab/azure-proxy-ns.ts')],
    { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', PROXY_ROUNDS: JSON.stringify(ROUNDS) }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      try {
        resolve(JSON.parse(stdout.trim().split('\n').pop() ?? '') as ProxyScenario);
      } catch {
        reject(new Error(`the namespace run ended (exit ${code}) without a result: ${stdout}\n${stderr}`));
      }
    });
  });
}

const connects = (r: ProxyRoundResult, hostPort: string): number => r.proxied.filter((l) => l === `CONNECT ${hostPort} HTTP/1.1`).length;

t.test('Azure calls through a real forward proxy (tinyproxy)', async (t) => {
  if (process.getuid?.() !== 0) return void t.fail('needs root (unshare --net --mount): run as root, as the lab tier does');
  const s = await scenario();
  const vault = new URL(s.urls.vault).host;
  const arm = new URL(s.urls.arm).host;
  const files = new URL(s.urls.files).host;
  const imds = new URL(s.urls.imds).host;
  const round = (name: string): ProxyRoundResult => {
    const r = s.rounds.find((x) => x.name === name);
    if (!r) throw new Error(`no round ${name}`);
    return r;
  };
  const imdsNeverProxied = (t: Test, r: ProxyRoundResult): void => {
    t.same(
      r.proxied.filter((l) => l.includes(imds) || l.includes('169.254.169.254') || l.includes('/metadata/')),
      [],
      'no IMDS request in the proxy log',
    );
    t.ok((r.seen.imds ?? 0) >= 3, `the IMDS fake answered the token, instance and events requests itself (${r.seen.imds})`);
    for (const c of IMDS_CALLS) t.ok(r.driver.calls[c]?.ok, `${c} works (${r.driver.calls[c]?.message ?? 'ok'})`);
  };
  const allThroughProxy = (t: Test, r: ProxyRoundResult): void => {
    for (const c of SDK_CALLS) t.ok(r.driver.calls[c]?.ok, `${c} works (${r.driver.calls[c]?.message ?? 'ok'})`);
    t.ok(connects(r, vault) >= 1, `Key Vault through the proxy: CONNECT ${vault}`);
    t.ok(connects(r, arm) >= 1, `ARM (listKeys, the VM list) through the proxy: CONNECT ${arm}`);
    t.ok(connects(r, files) >= 1, `Files REST through the proxy: CONNECT ${files}`);
    t.same(
      r.proxied.filter((l) => ![vault, arm, files].some((h) => l === `CONNECT ${h} HTTP/1.1`)),
      [],
      'nothing else went through the proxy',
    );
    imdsNeverProxied(t, r);
  };

  t.test(ROUNDS[0]!.name, async (t) => {
    const r = round(ROUNDS[0]!.name);
    t.equal(r.driver.route, `${PROXY} (HTTPS_PROXY; IMDS direct)`, 'the route status would show');
    allThroughProxy(t, r);
  });
  t.test(ROUNDS[1]!.name, async (t) => {
    const r = round(ROUNDS[1]!.name);
    t.equal(r.driver.route, `${PROXY} (azure.proxy; IMDS direct)`, 'the route');
    allThroughProxy(t, r);
  });
  t.test(ROUNDS[2]!.name, async (t) => {
    const r = round(ROUNDS[2]!.name);
    for (const c of SDK_CALLS) t.ok(r.driver.calls[c]?.ok, `${c} works (${r.driver.calls[c]?.message ?? 'ok'})`);
    t.equal(connects(r, vault), 0, 'Key Vault bypassed the proxy (.vault.localhost)');
    t.equal(connects(r, files), 0, `Files REST bypassed the proxy (${files})`);
    t.ok(connects(r, arm) >= 1, `ARM, not named, still went through it: CONNECT ${arm}`);
    t.ok((r.seen.keyVault ?? 0) >= 1 && (r.seen.files ?? 0) >= 2, 'the vault and Files fakes were reached directly');
    imdsNeverProxied(t, r);
  });
  t.test(ROUNDS[3]!.name, async (t) => {
    const r = round(ROUNDS[3]!.name);
    t.equal(r.driver.route, `${PROXY} (https_proxy; IMDS direct; NO_PROXY: example.com)`, 'lower-case variables are read');
    allThroughProxy(t, r);
  });
  t.test(ROUNDS[4]!.name, async (t) => {
    const r = round(ROUNDS[4]!.name);
    t.equal(r.driver.route, 'direct (azure.proxy: none)', 'the route');
    for (const c of [...SDK_CALLS, ...IMDS_CALLS]) t.ok(r.driver.calls[c]?.ok, `${c} works directly, the dead HTTPS_PROXY ignored`);
    t.same(r.proxied, [], 'nothing went through the proxy');
  });
  t.test(ROUNDS[5]!.name, async (t) => {
    const r = round(ROUNDS[5]!.name);
    for (const c of SDK_CALLS) {
      t.notOk(r.driver.calls[c]?.ok, `${c} fails while the proxy is down`);
      t.match(
        r.driver.calls[c]?.message ?? '',
        /ECONNREFUSED 127\.0\.0\.1:9 \(through the proxy 127\.0\.0\.1:9, from azure\.proxy\)/,
        `${c}: names the proxy (${r.driver.calls[c]?.message})`,
      );
    }
    for (const c of IMDS_CALLS) t.ok(r.driver.calls[c]?.ok, `${c} still works: IMDS never needs the proxy`);
    t.equal(r.seen.keyVault ?? 0, 0, 'the vault was not reached around the proxy');
  });
});
