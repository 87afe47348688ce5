/**
 * ARM listKeys asks IMDS for a token for the configured management
 * endpoint, so a VM in a sovereign cloud gets one its ARM accepts.
 */
import t from 'tap';
import type { Fakes } from '../../fakes/index.js';
import { armScope, storageKey } from '../../../src/tasks/share-mount/key.js';
import { KEY, SUBSCRIPTION, agentError, cloudArmAgent, setupTask, startShareFakes } from './helpers.js';

let fakes: Fakes;
t.before(async () => {
  ({ fakes } = await startShareFakes());
});
t.teardown(() => fakes.close());

t.test('the scope is the endpoint plus /.default', async (t) => {
  const cases = [
    { name: 'public', endpoint: 'https://management.azure.com', want: 'https://management.azure.com/.default' },
    { name: 'trailing slash', endpoint: 'https://management.azure.com/', want: 'https://management.azure.com/.default' },
    { name: 'Azure China', endpoint: 'https://management.chinacloudapi.cn', want: 'https://management.chinacloudapi.cn/.default' },
    {
      name: 'Azure US Government',
      endpoint: 'https://management.usgovcloudapi.net',
      want: 'https://management.usgovcloudapi.net/.default',
    },
  ];
  for (const c of cases) t.equal(armScope(c.endpoint), c.want, c.name);
});

t.test('the token IMDS is asked for follows azure.managementEndpoint', async (t) => {
  // Whether ARM then takes a sovereign token is the fake's audience policy (it may
  // accept only public-cloud tokens); what matters here is the token asked for and sent.
  const cases = [
    { endpoint: 'https://management.chinacloudapi.cn', key: undefined },
    { endpoint: 'https://management.usgovcloudapi.net', key: undefined },
    { endpoint: 'https://management.azure.com', key: KEY },
  ];
  for (const c of cases) {
    t.test(c.endpoint, async (t) => {
      const s = await setupTask(fakes, {
        share: { key: { armListKeys: { subscriptionId: SUBSCRIPTION, resourceGroup: 'rg-dsvm' } } },
        config: { azure: { imdsEndpoint: fakes.urls.imds, managementEndpoint: c.endpoint } },
      });
      const before = { imds: fakes.requests.imds.length, arm: fakes.requests.arm.length };
      const got = await storageKey(s.ctx, { agent: cloudArmAgent(fakes) }).catch((err: unknown) => err);
      if (c.key) t.equal(got, c.key);
      const tokens = fakes.requests.imds.slice(before.imds).filter((r) => r.route === 'imds.token');
      t.same(
        tokens.map((r) => r.query.resource),
        [c.endpoint],
        'one token request, for the configured endpoint',
      );
      t.match(fakes.requests.arm.slice(before.arm), [{ route: 'arm.listKeys', auth: 'Bearer' }], 'ARM got listKeys with that token');
    });
  }
});

t.test('a token ARM refuses names the setting to check', async (t) => {
  fakes.fail('arm.listKeys', {
    status: 401,
    body: { error: { code: 'InvalidAuthenticationTokenAudience', message: 'wrong audience' } },
    times: 3,
  });
  t.teardown(() => fakes.reset());
  const s = await setupTask(fakes, {
    share: { key: { armListKeys: { subscriptionId: SUBSCRIPTION, resourceGroup: 'rg-dsvm' } } },
    config: { azure: { imdsEndpoint: fakes.urls.imds, managementEndpoint: 'https://management.chinacloudapi.cn' } },
  });
  await t.rejects(
    storageKey(s.ctx, { agent: cloudArmAgent(fakes) }),
    agentError({ kind: 'permanent', reason: 'share-listkeys-unauthorized', fix: /azure\.managementEndpoint/ }),
  );
});
