/**
 * Preflight and azure.proxy: a join secret in Key Vault read through a proxy
 * that does not accept connections is reported as "proxy unreachable" with
 * the proxy's host:port and where it was configured, before any Key Vault
 * call; a vault that bypasses the proxy (NO_PROXY, IMDS, none) is not a
 * reason to probe it. Every address here is loopback.
 */
import t from 'tap';
import { makeTestContext } from '../../helpers/context.js';
import { AgentError } from '../../../src/agent/errors.js';
import { azureProxy, checkProxyReachable } from '../../../src/agent/azure/proxy.js';
import { runPreflight, type PreflightDeps } from '../../../src/tasks/preflight/index.js';

/** A vault on a closed loopback port: if preflight went on to read it, nothing leaves the machine. */
const VAULT = 'https://127.0.0.1:10';

function deps(closed: string[], probed: string[]): PreflightDeps {
  return {
    resolveSrv: async () => [{ name: 'dc1.contoso.test', port: 389, priority: 0, weight: 100 }],
    resolve4: async () => ['127.0.0.1'],
    probePort: async (host, port) => {
      probed.push(`${host}:${port}`);
      if (closed.includes(`${host}:${port}`)) throw new Error('connect ECONNREFUSED');
    },
    clockOffset: async () => 0,
  };
}

t.test('preflight: the proxy for the Key Vault join secret does not accept connections', async (t) => {
  const tc = await makeTestContext({ config: { azure: { proxy: 'http://127.0.0.2:3128' } } });
  // The test config's file reference, replaced (a merge would keep both kinds).
  tc.ctx.cfg = { ...tc.ctx.cfg, domain: { ...tc.ctx.cfg.domain, joinPassword: { keyVault: { vaultUrl: VAULT, name: 'dsvm-join' } } } };
  const probed: string[] = [];
  const err = await runPreflight(tc.ctx, deps(['127.0.0.2:3128'], probed), { portTimeoutMs: 10 }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof AgentError, 'a classified error');
  const e = err as AgentError;
  t.equal(e.kind, 'transient', 'transient: retried with backoff');
  t.equal(e.reason, 'proxy-unreachable');
  t.match(
    e.message,
    /^proxy unreachable: 127\.0\.0\.2:3128 \(azure\.proxy\), through which 127\.0\.0\.1:10 is called, does not accept connections/,
  );
  t.match(e.fix ?? '', /TCP 3128.*correct azure\.proxy/);
  t.same(probed, ['127.0.0.2:3128'], 'only the proxy was probed: no Key Vault call, no DC probe yet');
});

t.test('which targets make preflight probe the proxy', async (t) => {
  const imds = 'http://127.0.0.1:8080';
  const cases: Array<[name: string, azure: { proxy?: string }, env: NodeJS.ProcessEnv, target: string, probe: string | undefined]> = [
    ['through azure.proxy', { proxy: 'http://127.0.0.2:3128' }, {}, VAULT, '127.0.0.2:3128'],
    ['through HTTPS_PROXY', {}, { HTTPS_PROXY: 'http://127.0.0.3:8080' }, VAULT, '127.0.0.3:8080'],
    ['an https proxy without its default port spelled', {}, { HTTPS_PROXY: 'https://127.0.0.3:443' }, VAULT, '127.0.0.3:443'],
    ['NO_PROXY names the vault', { proxy: 'http://127.0.0.2:3128' }, { NO_PROXY: '127.0.0.1' }, VAULT, undefined],
    ['the target is IMDS', { proxy: 'http://127.0.0.2:3128' }, {}, `${imds}/metadata/identity/oauth2/token`, undefined],
    ['azure.proxy: none', { proxy: 'none' }, { HTTPS_PROXY: 'http://127.0.0.3:8080' }, VAULT, undefined],
    ['no proxy at all', {}, {}, VAULT, undefined],
  ];
  for (const [name, azure, env, target, probe] of cases) {
    const probed: string[] = [];
    await checkProxyReachable(
      azureProxy({ imdsEndpoint: imds, ...azure }, env),
      [target],
      async (h, p) => void probed.push(`${h}:${p}`),
      10,
    );
    t.same(probed, probe ? [probe] : [], `${name}: ${probe ? `probes ${probe}` : 'no probe'}`);
  }
});
