import t, { type Test } from 'tap';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ImdsClient } from '../../../src/agent/azure/imds.js';
import { AgentError } from '../../../src/agent/errors.js';

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;

async function serve(t: Test, handler: Handler): Promise<string> {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => handler(req, body, res));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function failure(p: Promise<unknown>): Promise<AgentError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof AgentError) return err;
    throw err;
  }
  throw new Error('expected a failure');
}

t.test('GET sends Metadata: true and parses the JSON answer', async (t) => {
  const seen: Array<{ method?: string; url?: string; metadata?: string | string[] }> = [];
  const url = await serve(t, (req, _body, res) => {
    seen.push({ method: req.method, url: req.url, metadata: req.headers.metadata });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ compute: { vmId: 'abc', name: 'vm1', osProfile: { computerName: 'host1' } } }));
  });
  const c = await new ImdsClient(`${url}/`, 1000).compute();
  t.equal(c.vmId, 'abc');
  t.equal(c.computerName, 'host1');
  t.equal(c.vmScaleSetName, '', 'missing fields are empty strings');
  t.same(seen, [{ method: 'GET', url: '/metadata/instance?api-version=2021-02-01', metadata: 'true' }], 'one GET, trailing slash folded');
});

t.test('POST sends a JSON body', async (t) => {
  let got: { type?: string; body?: string } = {};
  const url = await serve(t, (req, body, res) => {
    got = { type: req.headers['content-type'], body };
    res.writeHead(200);
    res.end();
  });
  const r = await new ImdsClient(url, 1000).request('POST', '/x', { StartRequests: [{ EventId: 'e1' }] });
  t.equal(r.status, 200);
  t.same(got, { type: 'application/json', body: '{"StartRequests":[{"EventId":"e1"}]}' });
});

t.test('errors are transient and say what happened', async (t) => {
  const url = await serve(t, (req, _body, res) => {
    if (req.url?.startsWith('/500')) {
      res.writeHead(500);
      res.end('no');
    } else if (req.url?.startsWith('/text')) {
      res.writeHead(200);
      res.end('<html>');
    }
    // /hang: never answers
  });
  const imds = new ImdsClient(url, 300);
  const e500 = await failure(imds.getJson('/500?api-version=1'));
  t.equal(e500.kind, 'transient');
  t.equal(e500.reason, 'imds-error');
  t.match(e500.message, /\/500 answered 500/);
  t.notMatch(e500.message, /api-version/, 'no query string in the message');
  t.equal((await failure(imds.getJson('/text'))).reason, 'imds-error', 'not JSON');
  const t0 = Date.now();
  const hang = await failure(imds.getJson('/hang'));
  t.equal(hang.reason, 'imds-unreachable');
  t.match(hang.message, /no answer within 300 ms/);
  t.ok(Date.now() - t0 < 2000, 'the timeout bounds a server that never answers');
  const refused = await failure(new ImdsClient('http://127.0.0.1:9', 1000).getJson('/x'));
  t.equal(refused.kind, 'transient');
  t.equal(refused.reason, 'imds-unreachable');
  t.match(refused.fix ?? '', /azure\.imdsEndpoint/);
});
