import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FakeCommand } from '../../helpers/fake-runner.js';
import type { RunResult } from '../../../src/agent/runner.js';

/**
 * The parts of the domain-join tests' world that differ by adcli version:
 * both versions' real `--help` and `join --help` (captured: fixtures
 * domain-join/adcli and domain-join/adcli-0.9.0), adcli 0.9.0's real
 * refusals of `show-computer` and `join --description`, and the LDAP
 * fallback's kinit (the join account), ldapsearch and ldapmodify, which
 * answer in the format captured from the lab DC (fixtures domain-join/ldap).
 */
const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/domain-join');

/** A captured run: NAME.stdout, NAME.stderr, NAME.exit. */
export function captured(dir: string, name: string): Partial<RunResult> {
  const read = (ext: string): string => readFileSync(path.join(FIXTURES, dir, `${name}.${ext}`), 'utf8');
  return { exitCode: Number(read('exit').trim()), stdout: read('stdout'), stderr: read('stderr') };
}

export interface LdapWorld {
  /** 0.9.1 unless set. */
  adcli?: '0.9.0' | '0.9.1';
  /** The object `adcli join` created, and its description (none: adcli 0.9.0). */
  joined?: { name: string; description?: string };
  /** Each kinit of the join account: its ccache, the mode of the ccache's directory, whether the password came on stdin. */
  tickets?: { ccache: string; dirMode: number; stdin: boolean }[];
  /** Each ldapmodify's LDIF. */
  modified?: string[];
  /** The principals the trust check's kinit -k authenticated. */
  keytabLogins?: string[];
  /** The KDC refuses the keytab's key (a reset machine password). */
  keytabRefused?: boolean;
  /** No KDC answers. */
  kdcDown?: boolean;
}

const DN = (name: string): string => `CN=${name},OU=DSVM,DC=contoso,DC=test`;

/** `existing`: name → description of the other computer objects in the domain (World.existing). */
function objects(w: LdapWorld, existing: Record<string, string>): Record<string, string | undefined> {
  return { ...existing, ...(w.joined ? { [w.joined.name]: w.joined.description } : {}) };
}

/** ldapsearch -LLL output for one computer, the lab DC's own (fixtures/domain-join/ldap/search-computer-ok), renamed and stamped. */
function ldifOf(name: string, description: string | undefined): string {
  const lines = (captured('ldap', 'search-computer-ok').stdout ?? '').replaceAll('CAPTEST1', name).split('\n');
  if (description !== undefined) lines.splice(lines.indexOf(''), 0, `description: ${description}`);
  return lines.join('\n');
}

export function versionCommands(w: LdapWorld, existing: Record<string, string>, password: string): FakeCommand[] {
  const dir = (): string => (w.adcli === '0.9.0' ? 'adcli-0.9.0' : 'adcli');
  const old = (): boolean => w.adcli === '0.9.0';
  return [
    { file: 'adcli', args: ['--help'], result: () => captured(dir(), 'help') },
    { file: 'adcli', args: ['join', '--help'], result: () => captured(dir(), 'join-help') },
    { file: 'adcli', args: (a) => old() && a[0] === 'show-computer', result: () => captured('adcli-0.9.0', 'show-computer') },
    {
      file: 'adcli',
      args: (a) => old() && a[0] === 'join' && a.some((x) => x.startsWith('--description')),
      result: (req) => {
        const r = captured('adcli-0.9.0', 'join-description');
        const given = req.args!.find((x) => x.startsWith('--description'))!;
        return { ...r, stderr: (r.stderr ?? '').replace("'--description=dsvm-agent'", `'${given}'`) };
      },
    },
    {
      // The trust check's kinit -k with the machine keytab (adcli 0.9.0's testjoin cannot name the machine).
      file: 'kinit',
      args: (a) => a[0] === '-k',
      result: (req) => {
        (w.keytabLogins ??= []).push(req.args!.at(-1)!);
        if (w.kdcDown)
          return { exitCode: 1, stderr: "kinit: Cannot contact any KDC for realm 'CONTOSO.TEST' while getting initial credentials\n" };
        return w.keytabRefused
          ? { exitCode: 1, stderr: 'kinit: Preauthentication failed while getting initial credentials\n' }
          : { exitCode: 0 };
      },
    },
    {
      // The join account's kinit (the KDC probe's kinit asks for NAME$ and is answered by the world's other kinit).
      file: 'kinit',
      args: (a) => !a[0]!.includes('$@'),
      result: (req) => {
        const ccache = req.env?.KRB5CCNAME?.replace(/^FILE:/, '') ?? '';
        (w.tickets ??= []).push({ ccache, dirMode: statSync(path.dirname(ccache)).mode & 0o777, stdin: req.input === `${password}\n` });
        return captured('ldap', req.input === `${password}\n` ? 'kinit-join-user' : 'kinit-wrong-password');
      },
    },
    {
      file: 'ldapsearch',
      result: (req) => {
        const filter = req.args!.find((a) => a.startsWith('(&'))!;
        const name = /sAMAccountName=([^$)]+)\$/.exec(filter)![1]!;
        const all = objects(w, existing);
        return name in all ? { stdout: ldifOf(name, all[name]) } : captured('ldap', 'search-computer-missing');
      },
    },
    {
      file: 'ldapmodify',
      result: (req) => {
        const ldif = req.input ?? '';
        (w.modified ??= []).push(ldif);
        const dn = /^dn: (.*)$/m.exec(ldif)![1]!;
        const description = /^description: (.*)$/m.exec(ldif)![1]!;
        if (w.joined && dn === DN(w.joined.name)) w.joined.description = description;
        const r = captured('ldap', 'modify-description-ok');
        return { ...r, stdout: r.stdout!.replace('CN=CAPTEST1,OU=DSVM,DC=contoso,DC=test', dn) };
      },
    },
  ];
}
