/**
 * azure.proxy: the NO_PROXY matcher (curl's rules plus host:port), which
 * proxy each Azure call takes (IMDS never one), the precedence of the config
 * over the unit's environment, and `config check` refusing bad values with
 * exit 2, the key named and the value (which may hold a password) never shown.
 * The calls through a real proxy: test/lab/azure-proxy.test.ts.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import t from 'tap';
import { azureProxy, azureRouteView, noProxyMatches, proxyDisplay, proxyFor } from '../../../src/agent/azure/proxy.js';
import { renderStatus } from '../../../src/app/commands/status.js';
import { AgentError } from '../../../src/agent/errors.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

t.test('NO_PROXY matching as curl does, plus host:port', async (t) => {
  const cases: Array<[name: string, host: string, port: number, noProxy: string, bypass: boolean]> = [
    ['empty list', 'kv.vault.azure.net', 443, '', false],
    ['* alone matches everything', 'kv.vault.azure.net', 443, '*', true],
    ['* among others', 'kv.vault.azure.net', 443, 'example.com,*', true],
    ['* inside a name is no wildcard', 'kv.vault.azure.net', 443, '*.azure.net', false],
    ['exact name', 'management.azure.com', 443, 'management.azure.com', true],
    ['a name matches the names below it', 'kv.vault.azure.net', 443, 'vault.azure.net', true],
    ['leading dot: a name below', 'kv.vault.azure.net', 443, '.vault.azure.net', true],
    ['leading dot: the domain itself', 'vault.azure.net', 443, '.vault.azure.net', true],
    ['suffix only at a label boundary', 'notvault.azure.net', 443, 'vault.azure.net', false],
    ['case is ignored', 'KV.Vault.Azure.NET', 443, 'vault.azure.net', true],
    ['trailing dot of the host is ignored', 'kv.vault.azure.net.', 443, '.vault.azure.net', true],
    ['spaces and empty items between commas', 'files.example', 443, ' a.example , ,files.example ', true],
    ['host:port matches that port', 'contoso.file.core.windows.net', 443, 'file.core.windows.net:443', true],
    ['host:port does not match another port', 'contoso.file.core.windows.net', 8443, 'file.core.windows.net:443', false],
    ['a bare host matches every port', 'contoso.file.core.windows.net', 8443, 'file.core.windows.net', true],
    ['IPv4 exact', '10.1.2.3', 443, '10.1.2.3', true],
    ['IPv4 is not suffix-matched', '10.1.2.3', 443, '1.2.3', false],
    ['IPv4 with port', '127.0.0.1', 4443, '127.0.0.1:4443', true],
    ['IPv4 with another port', '127.0.0.1', 4444, '127.0.0.1:4443', false],
    ['IPv4 CIDR inside', '10.1.2.3', 443, '10.0.0.0/8', true],
    ['IPv4 CIDR outside', '11.1.2.3', 443, '10.0.0.0/8', false],
    ['a name never matches an address entry', 'kv.vault.azure.net', 443, '10.0.0.0/8', false],
    ['IPv6 bracketed', '[::1]', 443, '[::1]', true],
    ['IPv6 bare, other spelling', '::1', 443, '0:0:0:0:0:0:0:1', true],
    ['IPv6 bracketed with port', '::1', 8443, '[::1]:443', false],
  ];
  for (const [name, host, port, noProxy, bypass] of cases)
    t.equal(noProxyMatches(host, port, noProxy.split(',')), bypass, `${name}: ${host}:${port} with NO_PROXY=${noProxy}`);
});

const azure = (proxy?: string, imdsEndpoint = 'http://169.254.169.254') => ({ imdsEndpoint, ...(proxy === undefined ? {} : { proxy }) });

t.test('precedence: azure.proxy, then https_proxy, then HTTPS_PROXY', async (t) => {
  const cases: Array<[name: string, proxy: string | undefined, env: NodeJS.ProcessEnv, url: string | undefined, source: string]> = [
    ['nothing: direct', undefined, {}, undefined, 'no proxy configured'],
    ['HTTPS_PROXY', undefined, { HTTPS_PROXY: 'http://up.corp:3128' }, 'http://up.corp:3128/', 'HTTPS_PROXY'],
    [
      'https_proxy wins over HTTPS_PROXY',
      undefined,
      { HTTPS_PROXY: 'http://up:1', https_proxy: 'http://low:2' },
      'http://low:2/',
      'https_proxy',
    ],
    [
      'HTTP_PROXY and ALL_PROXY are not read',
      undefined,
      { HTTP_PROXY: 'http://h:1', ALL_PROXY: 'http://a:2' },
      undefined,
      'no proxy configured',
    ],
    [
      'azure.proxy wins over the environment',
      'http://cfg.corp:8080',
      { HTTPS_PROXY: 'http://env:1' },
      'http://cfg.corp:8080/',
      'azure.proxy',
    ],
    ['azure.proxy: none ignores the environment', 'none', { HTTPS_PROXY: 'http://env:1' }, undefined, 'azure.proxy: none'],
  ];
  for (const [name, proxy, env, url, source] of cases) {
    const p = azureProxy(azure(proxy), env);
    t.equal(p.url?.href, url, `${name}: proxy`);
    t.equal(p.source, source, `${name}: source`);
  }
  const p = azureProxy(azure(), { NO_PROXY: 'upper.example', no_proxy: 'lower.example' });
  t.same(p.noProxy, ['lower.example'], 'no_proxy wins over NO_PROXY, as in curl');
});

t.test('a bad proxy in the environment is a config error naming the variable, never quoting it', async (t) => {
  const cases: Array<[name: string, env: NodeJS.ProcessEnv, message: RegExp]> = [
    ['credentials', { HTTPS_PROXY: 'http://bob:hunter2@proxy:3128' }, /^HTTPS_PROXY must not hold a user name or password/],
    ['no port', { https_proxy: 'http://proxy.corp' }, /^https_proxy names no port/],
    [
      'not a URL',
      { HTTPS_PROXY: 'proxy.corp:3128' },
      /^HTTPS_PROXY must be an http:\/\/ or https:\/\/ URL|^HTTPS_PROXY must be the proxy's URL/,
    ],
  ];
  for (const [name, env, message] of cases) {
    const err = (() => {
      try {
        azureProxy(azure(), env);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    t.ok(err instanceof AgentError && err.kind === 'config', `${name}: a config error`);
    t.match((err as Error).message, message, `${name}: message`);
    t.notMatch(`${(err as Error).message} ${(err as AgentError).fix ?? ''}`, /hunter2|bob/, `${name}: value not quoted`);
    t.match((err as AgentError).fix ?? '', /azure\.proxy/, `${name}: the fix names azure.proxy`);
  }
});

t.test('which calls go through the proxy', async (t) => {
  const p = azureProxy(azure('http://proxy.corp:3128', 'http://127.0.0.1:8080'), { NO_PROXY: '.vault.localhost,127.0.0.1:9443' });
  const cases: Array<[name: string, url: string, proxied: boolean]> = [
    ['Key Vault named in NO_PROXY', 'https://dsvm.vault.localhost:9000/secrets/x', false],
    ['ARM', 'https://127.0.0.1:9001/subscriptions/s', true],
    ['Files REST on the NO_PROXY port', 'https://127.0.0.1:9443/contosofiles/workspace', false],
    ['the configured IMDS endpoint', 'http://127.0.0.1:8080/metadata/identity/oauth2/token/', false],
    ['another port of the IMDS host is not IMDS', 'http://127.0.0.1:8081/x', true],
    ['169.254.169.254 is always direct', 'http://169.254.169.254/metadata/scheduledevents', false],
    ['public Key Vault', 'https://contoso-kv.vault.azure.net/secrets/dsvm-join', true],
  ];
  for (const [name, url, proxied] of cases) t.equal(proxyFor(url, p)?.host, proxied ? 'proxy.corp:3128' : undefined, name);
  t.equal(
    proxyDisplay(p),
    'http://proxy.corp:3128 (azure.proxy; IMDS direct; NO_PROXY: .vault.localhost,127.0.0.1:9443)',
    'status shows host:port and where it came from',
  );
  t.equal(proxyDisplay(azureProxy(azure(), {})), 'direct (no proxy configured)');
  t.equal(
    proxyFor('https://contoso-kv.vault.azure.net/', azureProxy(azure(), { HTTPS_PROXY: 'http://p:1', NO_PROXY: '*' })),
    undefined,
    'NO_PROXY=*',
  );
});

t.test('config check refuses a bad azure.proxy: exit 2, the key and the fix named, the value never shown', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'azure-proxy-'));
  const cases: Array<[name: string, value: string, message: RegExp]> = [
    [
      'credentials',
      'http://bob:hunter2@proxy.corp:3128',
      /azure\.proxy: must not hold a user name or password: .*write the URL without "user:password@"/,
    ],
    ['scheme', 'socks5://proxy.corp:1080', /azure\.proxy: must be an http:\/\/ or https:\/\/ URL.*write e\.g\. http:\/\/proxy\.corp:3128/],
    ['no port', 'http://proxy.corp', /azure\.proxy: names no port: write the port the proxy listens on, e\.g\. http:\/\/proxy\.corp:3128/],
    ['a path', 'http://proxy.corp:3128/pac', /azure\.proxy: must be the proxy's address only.*write http:\/\/proxy\.corp:3128/],
    ['not a URL', 'proxy.corp 3128', /azure\.proxy: must be the proxy's URL: write e\.g\. http:\/\/proxy\.corp:3128/],
  ];
  const entry = ['--import', pathToFileURL(path.join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href, path.join(ROOT, 'src/main.ts')];
  for (const [name, value, message] of [
    ...cases,
    ['valid', 'http://proxy.corp:3128', /valid/] as const,
    ['none', 'none', /valid/] as const,
  ]) {
    const file = path.join(dir, `${name.replace(/\W/g, '-')}.yaml`);
    await writeFile(
      file,
      `domain: { name: contoso.com, joinUser: j@CONTOSO.COM, joinPassword: { file: /etc/dsvm-agent/join-password } }\nazure: { proxy: ${JSON.stringify(value)} }\n`,
    );
    const r = await new Promise<{ code: number | null; out: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [...entry, 'config', 'check', file], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, out }));
    });
    const valid = name === 'valid' || name === 'none';
    t.equal(r.code, valid ? 0 : 2, `${name}: exit ${valid ? 0 : 2}`);
    t.match(r.out, message, `${name}: message (${r.out.trim()})`);
    // config check shows other keys' bad values as `(got "...")`; never this one's.
    if (!valid) t.notMatch(r.out, /\(got |hunter2/, `${name}: the value is not echoed`);
  }
});

t.test('status and health show the route: host:port and where it came from, never a refused value', async (t) => {
  t.equal(azureRouteView(azure(), { HTTPS_PROXY: 'http://10.0.0.5:3128' }), 'http://10.0.0.5:3128 (HTTPS_PROXY; IMDS direct)');
  const refused = azureRouteView(azure(), { HTTPS_PROXY: 'http://bob:hunter2@10.0.0.5:3128' });
  t.match(refused, /^refused: HTTPS_PROXY must not hold a user name or password/);
  t.notMatch(refused, /hunter2|bob/, 'the refused value is not quoted');
  const text = renderStatus({ ApplicationHealthState: 'Healthy', reason: 'ok', checks: [], azureRoute: 'direct (no proxy configured)' });
  t.match(text, /^azure calls: direct \(no proxy configured\)$/m, 'dsvm-agent status prints it');
});
