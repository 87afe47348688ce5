import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTestContext } from '../../helpers/context.js';
import { kdcSaysNoAccount, probeArgv, probeKrb5Conf, saysNoSuchPrincipal } from '../../../src/tasks/domain-join/kdc-probe.js';

/** Real MIT kinit answers from the lab's Samba KDC (test/lab/capture-fixtures.ts kdc-probe). */
const DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/lab');
const captured = (name: string): { argv: string[]; exitCode: number; stdout: string; stderr: string } =>
  JSON.parse(readFileSync(path.join(DIR, `kinit-probe-${name}.json`), 'utf8'));

t.test('only a plain "not found" for this very principal says the name is free', async (t) => {
  const none = captured('no-such-account');
  t.same(none.argv.slice(-1), probeArgv('dsvm-fix-none', 'contoso.test'), 'captured with the agent argv');
  t.equal(saysNoSuchPrincipal(none, 'DSVM-FIX-NONE', 'CONTOSO.TEST'), true, 'no such account');
  t.equal(saysNoSuchPrincipal(none, 'dsvm-fix-none', 'contoso.test'), true, 'names compare without case');
  t.equal(saysNoSuchPrincipal(none, 'DSVM-FIX-OTHER', 'CONTOSO.TEST'), false, "another principal's answer says nothing");
  t.equal(saysNoSuchPrincipal(captured('account-exists'), 'DSVM-FIX-KDC', 'CONTOSO.TEST'), false, 'existing account');
  t.equal(saysNoSuchPrincipal(captured('account-disabled'), 'DSVM-FIX-KDC', 'CONTOSO.TEST'), false, 'disabled account counts as existing');
  t.equal(saysNoSuchPrincipal(captured('kdc-unreachable'), 'DSVM-FIX-KDC', 'CONTOSO.TEST'), false, 'KDC unreachable: no answer');
  t.equal(saysNoSuchPrincipal({ exitCode: 0, stderr: '' }, 'X', 'R'), false, 'a ticket (impossible without a password) is not "free"');
});

t.test('its krb5.conf names the one DC as the only KDC, over TCP', async (t) => {
  t.equal(
    probeKrb5Conf('CONTOSO.TEST', 'dc1.contoso.test'),
    '[libdefaults]\n\tdefault_realm = CONTOSO.TEST\n\tdns_lookup_kdc = false\n\tdns_lookup_realm = false\n\trdns = false\n\tudp_preference_limit = 1\n[realms]\n\tCONTOSO.TEST = {\n\t\tkdc = dc1.contoso.test\n\t}\n',
  );
  t.same(probeArgv('dsvmpool-1', 'contoso.test'), ['DSVMPOOL-1$@CONTOSO.TEST']);
});

t.test('the look-up as the task runs it: no password, one KDC, no ticket cache, nothing left behind', async (t) => {
  const tc = await makeTestContext();
  let conf = '';
  let confPath = '';
  tc.runner.on({
    file: 'kinit',
    result: (req) => {
      confPath = req.env!.KRB5_CONFIG!;
      conf = readFileSync(confPath, 'utf8');
      return { exitCode: 1, stderr: `kinit: Client '${req.args![0]}' not found in Kerberos database while getting initial credentials\n` };
    },
  });
  t.equal(await kdcSaysNoAccount(tc.ctx, 'dsvmpool-1', 'dc1.contoso.test'), true);
  const call = tc.runner.calls[0]!;
  t.same(call.args, ['DSVMPOOL-1$@CONTOSO.TEST'], 'the principal, nothing else');
  t.equal(call.input, '', 'stdin empty: kinit can never send a password');
  t.equal(call.env?.KRB5CCNAME, 'MEMORY:', 'no ticket cache on disk');
  t.equal(conf, probeKrb5Conf('CONTOSO.TEST', 'dc1.contoso.test'), 'asks the given DC only');
  t.notOk(confPath.startsWith(tc.paths.root), "not under the agent's root");
  t.notOk(existsSync(path.dirname(confPath)), 'its directory is removed');

  const missing = await makeTestContext();
  missing.runner.on({ file: 'kinit', result: () => ({ exitCode: null, startError: 'ENOENT' }) });
  t.equal(await kdcSaysNoAccount(missing.ctx, 'DSVMPOOL-1', 'dc1'), false, 'no kinit: no answer, the LDAP look-up decides');
  const hung = await makeTestContext();
  hung.runner.on({ file: 'kinit', result: () => ({ exitCode: null, signal: 'SIGKILL', timedOut: true }) });
  t.equal(await kdcSaysNoAccount(hung.ctx, 'DSVMPOOL-1', 'dc1'), false, 'no answer in time: the LDAP look-up decides');
});
