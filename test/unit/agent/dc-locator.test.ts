import t from 'tap';
import dgram from 'node:dgram';
import { once } from 'node:events';
import dnsPacket from 'dns-packet';
import { AgentError } from '../../../src/agent/errors.js';
import { classifySrvError, firstDomainController, lookupSrv, srvThrough, systemResolver } from '../../../src/agent/dc-locator.js';

/**
 * A DNS server on loopback that drops the first `drop` queries and then
 * answers the domain's LDAP SRV record: a DC busy with a burst of joins.
 */
async function slowDns(drop: number): Promise<{ port: number; queries: () => number; close: () => void }> {
  const sock = dgram.createSocket('udp4');
  let queries = 0;
  sock.on('message', (msg, rinfo) => {
    const q = dnsPacket.decode(msg);
    if (++queries <= drop) return;
    const question = q.questions?.[0];
    const answers: dnsPacket.Answer[] =
      question?.type === 'SRV' && question.name === '_ldap._tcp.contoso.test'
        ? [
            { type: 'SRV', name: question.name, ttl: 60, data: { priority: 0, weight: 100, port: 389, target: 'dc2.contoso.test' } },
            { type: 'SRV', name: question.name, ttl: 60, data: { priority: 0, weight: 100, port: 389, target: 'dc1.contoso.test' } },
          ]
        : [];
    const reply = dnsPacket.encode({ id: q.id, type: 'response', flags: dnsPacket.RECURSION_DESIRED, questions: q.questions, answers });
    sock.send(reply, rinfo.port, rinfo.address);
  });
  sock.bind(0, '127.0.0.1');
  await once(sock, 'listening');
  return { port: sock.address().port, queries: () => queries, close: () => sock.close() };
}

t.test('the system resolver waits out a DNS server that drops two queries (a DC busy with joins)', async (t) => {
  const dns = await slowDns(2);
  t.teardown(dns.close);
  const resolver = systemResolver();
  resolver.setServers([`127.0.0.1:${dns.port}`]);
  const dc = await firstDomainController('contoso.test', srvThrough(resolver));
  t.equal(dc, 'dc1.contoso.test', 'the first in SRV order (equal priority and weight: by name)');
  t.equal(dns.queries(), 3, 'answered on the third try');
});

t.test('a DNS server that never answers is a transient failure naming the server asked', async (t) => {
  const dns = await slowDns(Infinity);
  t.teardown(dns.close);
  const resolver = systemResolver();
  resolver.setServers([`127.0.0.1:${dns.port}`]);
  const err = await lookupSrv('contoso.test', '_ldap._tcp.contoso.test', srvThrough(resolver)).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof AgentError);
  t.equal((err as AgentError).kind, 'transient');
  t.equal((err as AgentError).reason, 'dns-not-ready');
  t.match((err as AgentError).message, `(ETIMEOUT from 127.0.0.1:${dns.port})`);
  t.equal(dns.queries(), 3, 'three tries, then given up');
});

t.test('classification: NXDOMAIN and no record are permanent, an empty answer is no record', async (t) => {
  const code = (c: string): Error => Object.assign(new Error(c), { code: c });
  t.equal(classifySrvError('_ldap._tcp.x', 'x', code('ENOTFOUND')).reason, 'dns-domain-unknown');
  t.equal(classifySrvError('_ldap._tcp.x', 'x', code('ENODATA')).kind, 'permanent');
  t.equal(classifySrvError('_ldap._tcp.x', 'x', code('ESERVFAIL')).kind, 'transient');
  const empty = await lookupSrv('x', '_ldap._tcp.x', async () => []).catch((e: unknown) => e as AgentError);
  t.equal((empty as AgentError).reason, 'dns-srv-missing');
});
