/**
 * removeOwnDnsRecord when nsupdate's exit status and the DNS server disagree:
 * Samba's internal DNS applies a GSS-TSIG update, then signs its reply in a
 * way nsupdate rejects ("tsig verify failure", exit 2). The DC's own answer
 * decides; any other failure stays a failure.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { removeOwnDnsRecord, type DnsRecordDeps } from '../../../src/tasks/scheduled-events/dns-record.js';
import { makeTestContext } from '../../helpers/context.js';

const KLIST = 'Keytab name: FILE:/etc/krb5.keytab\nKVNO Principal\n---- ----\n   1 DSVM-0001$@CONTOSO.TEST\n';
const TSIG = { exitCode: 2, stderr: '; TSIG error with server: tsig verify failure\n' };

async function setUp(nsupdate: { exitCode: number; stderr: string }, left: string[] | Error) {
  const tc = await makeTestContext({
    commands: [{ file: 'klist', result: { stdout: KLIST } }, { file: 'kinit' }, { file: 'nsupdate', result: nsupdate }],
  });
  await mkdir(path.dirname(tc.paths.krb5Keytab), { recursive: true });
  await writeFile(tc.paths.krb5Keytab, 'keytab');
  const asked: string[] = [];
  const deps: DnsRecordDeps = {
    firstDc: async () => 'dc1.contoso.test',
    addressesAtDc: async (dc, fqdn) => {
      asked.push(`${dc} ${fqdn}`);
      if (left instanceof Error) throw left;
      return left;
    },
  };
  return { tc, deps, asked };
}

t.test('tsig verify failure, and the DC has no address left: removed, with a warning', async (t) => {
  const { tc, deps, asked } = await setUp(TSIG, []);
  t.equal(await removeOwnDnsRecord(tc.ctx, deps), 'DNS record dsvm-0001.contoso.test (A, AAAA) at dc1.contoso.test');
  t.same(asked, ['dc1.contoso.test dsvm-0001.contoso.test'], 'asked the DC the update went to');
  t.match(tc.logLines.join('\n'), /did not verify.*no A\/AAAA/);
  const ns = tc.runner.calls.find((c) => c.file === 'nsupdate');
  t.match(ns?.input, /server dc1\.contoso\.test\n.*update delete dsvm-0001\.contoso\.test\. A\n/s);
});

t.test('tsig verify failure, but the DC still answers the address: a failure naming it', async (t) => {
  const { tc, deps } = await setUp(TSIG, ['10.77.0.30']);
  await t.rejects(removeOwnDnsRecord(tc.ctx, deps), /tsig verify failure.*dc1\.contoso\.test still answers 10\.77\.0\.30/s);
});

t.test('tsig verify failure and the DC cannot be asked: a failure, not a guess', async (t) => {
  const { tc, deps } = await setUp(TSIG, new Error('queryA ETIMEOUT dsvm-0001.contoso.test'));
  await t.rejects(removeOwnDnsRecord(tc.ctx, deps), /cannot ask dc1\.contoso\.test: queryA ETIMEOUT/);
});

t.test('any other nsupdate failure: no look-up, a failure', async (t) => {
  const { tc, deps, asked } = await setUp({ exitCode: 2, stderr: 'update failed: REFUSED\n' }, []);
  await t.rejects(removeOwnDnsRecord(tc.ctx, deps), /REFUSED/);
  t.same(asked, [], 'the DC was not asked');
});
