import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TlsMaterial {
  caFile: string;
  ca: string;
  key: string;
  cert: string;
}

/**
 * Names the server certificate is valid for. `*.vault.localhost` lets a test
 * use a vault URL such as https://dsvm.vault.localhost:PORT, the only kind of
 * loopback URL whose Key Vault challenge the SDK accepts (see keyvault.ts).
 */
function subjectAltNames(host: string): string {
  const names = new Set(['IP:127.0.0.1', 'IP:::1', 'DNS:localhost', 'DNS:*.vault.localhost']);
  if (isIP(host)) names.add(`IP:${host}`);
  else if (host) names.add(`DNS:${host}`);
  return [...names].join(',');
}

/**
 * A fresh CA and a server certificate signed by it, made with the openssl
 * CLI (argv only). The CA key is deleted once the server certificate is
 * signed: nothing may mint more certificates this CA vouches for.
 */
export async function makeTls(dir: string, host: string): Promise<TlsMaterial> {
  const p = (name: string): string => path.join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await run('openssl', [
    'req',
    '-x509',
    ...ec,
    '-keyout',
    p('ca.key'),
    '-out',
    p('ca.pem'),
    '-days',
    '7',
    '-subj',
    `/CN=dsvm-agent test fakes CA ${randomBytes(4).toString('hex')}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  await run('openssl', ['req', '-new', ...ec, '-keyout', p('server.key'), '-out', p('server.csr'), '-subj', '/CN=dsvm-agent test fakes']);
  await writeFile(
    p('server.ext'),
    `subjectAltName=${subjectAltNames(host)}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n`,
  );
  await run('openssl', [
    'x509',
    '-req',
    '-in',
    p('server.csr'),
    '-CA',
    p('ca.pem'),
    '-CAkey',
    p('ca.key'),
    '-set_serial',
    `0x${randomBytes(12).toString('hex')}`,
    '-days',
    '7',
    '-extfile',
    p('server.ext'),
    '-out',
    p('server.pem'),
  ]);
  await Promise.all(['ca.key', 'server.csr', 'server.ext'].map((f) => rm(p(f), { force: true })));
  const [ca, key, cert] = await Promise.all([
    readFile(p('ca.pem'), 'utf8'),
    readFile(p('server.key'), 'utf8'),
    readFile(p('server.pem'), 'utf8'),
  ]);
  return { caFile: p('ca.pem'), ca, key, cert };
}
