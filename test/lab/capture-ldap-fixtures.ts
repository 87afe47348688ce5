/**
 * Captures what OpenLDAP's tools print against the lab's Samba AD DC, for
 * the adcli 0.9.0 fallback's unit tests (test/fixtures/domain-join/ldap/,
 * NAME.stdout/.stderr/.exit like the adcli fixtures), and answers one
 * question the fallback's design rests on: may a computer account write its
 * own description with its keytab (SELF)? Run it against an up lab:
 *
 *   flock /tmp/dsvm-lab.lock bash -c 'test/lab/lab up && npx tsx test/lab/capture-ldap-fixtures.ts; test/lab/lab down'
 *
 * The password goes on stdin only; the outputs hold no secret (no keys, no tickets).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT, clientExec, labEnv, readLabSecret, type ExecResult } from './harness.js';
import { probeKrb5Conf } from '../../src/tasks/domain-join/kdc-probe.js';
import { descriptionLdif, modifyArgv, searchComputerArgv } from '../../src/tasks/domain-join/adcli-compat.js';

const OUT = path.join(PROJECT_ROOT, 'test/fixtures/domain-join/ldap');
const CLIENT = 'c1';
const env = labEnv();
const COMPUTER = 'CAPTEST1';
const DIR = '/tmp/dsvm-ldap-capture';
const KEYTAB = `${DIR}/cap.keytab`;
const kenv = { KRB5_CONFIG: `${DIR}/krb5.conf`, KRB5CCNAME: `FILE:${DIR}/ccache` };
const password = readLabSecret('join-password');

function save(name: string, r: ExecResult): void {
  mkdirSync(OUT, { recursive: true });
  writeFileSync(path.join(OUT, `${name}.stdout`), r.stdout);
  writeFileSync(path.join(OUT, `${name}.stderr`), r.stderr);
  writeFileSync(path.join(OUT, `${name}.exit`), `${r.exitCode}\n`);
  process.stdout.write(`${name}: exit ${r.exitCode}\n${r.stdout}${r.stderr}\n`);
}

const inClient = (argv: string[], opts: { input?: string; env?: Record<string, string> } = {}): Promise<ExecResult> =>
  clientExec(CLIENT, argv, opts);

async function main(): Promise<void> {
  await inClient(['bash', '-c', `rm -rf ${DIR} && mkdir -m 0700 ${DIR} && cat > ${DIR}/krb5.conf`], {
    input: probeKrb5Conf(env.REALM, env.DC_HOSTNAME),
  });
  const join = await inClient(
    [
      'adcli',
      'join',
      `--domain=${env.DOMAIN}`,
      `--domain-controller=${env.DC_HOSTNAME}`,
      `--login-user=${env.JOIN_USER}`,
      '--stdin-password',
      `--computer-name=${COMPUTER}`,
      `--host-fqdn=${COMPUTER.toLowerCase()}.${env.DOMAIN}`,
      `--domain-ou=${env.JOIN_OU}`,
      `--host-keytab=${KEYTAB}`,
      '--os-name=Debian',
      '--os-version=11',
    ],
    { input: password },
  );
  process.stdout.write(`adcli join (no --description, as 0.9.0 must): exit ${join.exitCode}\n${join.stderr}\n`);
  try {
    save('kinit-join-user', await inClient(['kinit', `${env.JOIN_USER}@${env.REALM}`], { input: `${password}\n`, env: kenv }));
    save('search-computer-ok', await inClient(['ldapsearch', ...searchComputerArgv(env.DC_HOSTNAME, env.REALM, COMPUTER)], { env: kenv }));
    save(
      'search-computer-missing',
      await inClient(['ldapsearch', ...searchComputerArgv(env.DC_HOSTNAME, env.REALM, 'NOSUCH01')], { env: kenv }),
    );
    const dn = `CN=${COMPUTER},${env.JOIN_OU}`;
    save(
      'modify-description-ok',
      await inClient(['ldapmodify', ...modifyArgv(env.DC_HOSTNAME)], {
        input: descriptionLdif(dn, 'dsvm-agent vmId=11111111-2222-3333-4444-555555555555'),
        env: kenv,
      }),
    );
    save(
      'search-computer-stamped',
      await inClient(['ldapsearch', ...searchComputerArgv(env.DC_HOSTNAME, env.REALM, COMPUTER)], { env: kenv }),
    );
    save(
      'kinit-wrong-password',
      await inClient(['kinit', `${env.JOIN_USER}@${env.REALM}`], {
        input: 'not-the-password\n',
        env: { ...kenv, KRB5CCNAME: `FILE:${DIR}/cc2` },
      }),
    );
    // SELF: the machine's own keytab, writing its own description.
    const self = { ...kenv, KRB5CCNAME: `FILE:${DIR}/ccself` };
    save('kinit-machine-keytab', await inClient(['kinit', '-k', '-t', KEYTAB, `${COMPUTER}$@${env.REALM}`], { env: self }));
    save(
      'modify-description-self',
      await inClient(['ldapmodify', ...modifyArgv(env.DC_HOSTNAME)], {
        input: descriptionLdif(dn, 'written by the machine itself'),
        env: self,
      }),
    );
    save(
      'search-unreachable-dc',
      await inClient(['ldapsearch', ...searchComputerArgv('10.77.0.250', env.REALM, COMPUTER)], { env: { ...kenv } }),
    );
  } finally {
    await inClient(['adcli', 'delete-computer', `--domain=${env.DOMAIN}`, `--login-user=${env.JOIN_USER}`, '--stdin-password', COMPUTER], {
      input: password,
    });
    await inClient(['rm', '-rf', DIR]);
  }
}

await main();
