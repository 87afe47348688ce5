import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { makeTestContext, writeSecretFile } from '../../helpers/context.js';
import type { FakeCommand } from '../../helpers/fake-runner.js';
import { AgentError } from '../../../src/agent/errors.js';
import { primaryComputerName } from '../../../src/tasks/domain-join/computer-name.js';
import { versionCommands, type LdapWorld } from './world-adcli-0.9.0.js';

/**
 * The domain-join tests' world: a DC (KDC, adcli 0.9.1's LDAP look-ups and
 * join), visudo and pam-auth-update, answered by the shared fake runner.
 */
export const PASSWORD = 'S3cret-Join-Pw';
export const OTHER_VM = '0b6d4f7e-1111-4c2e-9a55-2f5d8e7c9a01';
export const backoff = { initialMs: 10, maxDelayMs: 10, factor: 1, maxAttempts: 3, maxElapsedMs: 1000 };
/** The error a promise rejects with (fails the test if it resolves). */
export async function caught(p: Promise<unknown>): Promise<AgentError> {
  try {
    await p;
  } catch (err) {
    return err as AgentError;
  }
  throw new Error('expected a rejection');
}
export const filetime = (ms: number): string => String(BigInt(ms) * 10_000n + 116_444_736_000_000_000n);

export interface World {
  joinedAs?: string;
  joinFails?: string;
  testjoinFails?: string;
  kdcDown?: boolean;
  visudoFails?: string;
  /** A validator line sssctl config-check prints for the candidate sssd.conf. */
  sssctlFails?: string;
  /** The KDC each kinit was sent to (from its krb5.conf). */
  kdcAsked?: string[];
  /** How each `adcli join` authenticated: the ticket it was given (and whether that ticket's directory was there), or the password on stdin. */
  joinLogins?: { ccache?: string; ccacheThere?: boolean; stdin: boolean }[];
  existing: Record<string, string>;
  /** adcli 0.9.0 (Debian 11, Ubuntu 20.04) or 0.9.1 (the default), and what the LDAP fallback did. */
  ldap?: LdapWorld;
}

export function adcliCommands(keytab: string, w: World, commonSession: string): FakeCommand[] {
  return [
    {
      file: 'klist',
      args: ['-k', keytab],
      result: () =>
        w.joinedAs
          ? { stdout: `Keytab name: FILE:${keytab}\nKVNO Principal\n---- ----\n   2 ${w.joinedAs}$@CONTOSO.TEST\n` }
          : { exitCode: 1, stderr: 'klist: Key table file not found' },
    },
    {
      file: 'adcli',
      args: (a) => a[0] === 'testjoin',
      result: () =>
        w.testjoinFails ? { exitCode: 4, stderr: w.testjoinFails } : { stdout: 'Sucessfully validated join to domain contoso.test\n' },
    },
    {
      // The KDC knows every account (captured answers: test/fixtures/lab/kinit-probe-*.json).
      file: 'kinit',
      result: (req) => {
        const principal = req.args![0]!;
        (w.kdcAsked ??= []).push(/^\s*kdc = (\S+)$/m.exec(readFileSync(req.env!.KRB5_CONFIG!, 'utf8'))?.[1] ?? '?');
        const name = principal.replace(/\$@.*$/, '');
        if (w.kdcDown)
          return { exitCode: 1, stderr: "kinit: Cannot contact any KDC for realm 'CONTOSO.TEST' while getting initial credentials\n" };
        return w.existing[name] === undefined
          ? { exitCode: 1, stderr: `kinit: Client '${principal}' not found in Kerberos database while getting initial credentials\n` }
          : {
              exitCode: 1,
              stdout: `Password for ${principal}: \n`,
              stderr: 'kinit: Pre-authentication failed: Cannot read password while getting initial credentials\n',
            };
      },
    },
    {
      file: 'adcli',
      args: (a) => a[0] === 'show-computer',
      result: (req) => {
        const name = req.args!.at(-1)!;
        const desc = w.existing[name];
        return desc === undefined
          ? { exitCode: 5, stderr: `adcli: couldn't read data for ${name}: No computer account for ${name}$ exists\n` }
          : {
              stdout: `sAMAccountName:\n ${name}$\npwdLastSet:\n ${filetime(Date.parse('2025-12-31T00:00:00Z'))}\ndescription:\n ${desc}\n`,
            };
      },
    },
    {
      file: 'adcli',
      args: (a) => a[0] === 'join',
      result: async (req) => {
        const ccache = req.args!.find((a) => a.startsWith('--login-ccache='))?.slice('--login-ccache=FILE:'.length);
        (w.joinLogins ??= []).push({
          ...(ccache ? { ccache, ccacheThere: existsSync(path.dirname(ccache)) } : {}),
          stdin: req.input === PASSWORD && req.args!.includes('--stdin-password'),
        });
        if (w.joinFails) return { exitCode: 3, stderr: w.joinFails };
        const name = req.args!.find((a) => a.startsWith('--computer-name='))!.split('=')[1]!;
        await writeFile(keytab, 'keytab-bytes', { mode: 0o600 });
        w.joinedAs = name;
        const description = req.args!.find((a) => a.startsWith('--description='))?.slice('--description='.length);
        if (w.ldap) w.ldap.joined = { name, ...(description !== undefined ? { description } : {}) };
        return { stdout: '[computer]\ncomputer-name = ' + name + '\n' };
      },
    },
    {
      file: 'visudo',
      args: (a) => a[0] === '-cf',
      result: () => (w.visudoFails ? { exitCode: 1, stderr: `${w.visudoFails}\n` } : {}),
    },
    {
      // The installed sssd's own check of the candidate (sssctl config-check -c FILE -s DIR).
      file: 'sssctl',
      args: (a) => a[0] === 'config-check' && a[1] === '-c' && a[3] === '-s',
      result: () => (w.sssctlFails ? { exitCode: 1, stdout: `Issues identified by validators: 1\n${w.sssctlFails}\n` } : {}),
    },
    {
      file: 'pam-auth-update',
      result: async (req) => (
        await writeFile(
          commonSession,
          req.args!.includes('--enable')
            ? 'session\toptional\t\t\tpam_mkhomedir.so umask=0077 skel=/etc/skel\n'
            : 'session\trequired\tpam_unix.so\n',
        ),
        {}
      ),
    },
  ];
}

export const DC = 'dc1.contoso.test';

/** A test world; by default the preflight of this run found DC (as `provision` and `plan` do). */
export async function setup(w: World, config: Record<string, unknown> = {}, opts: { preflightDc?: boolean } = {}) {
  const tc = await makeTestContext({
    config: { domain: { allowGroups: ['dsvm-users'], sudoGroups: ['dsvm-admins'], computerOu: 'OU=DSVM,DC=contoso,DC=test', ...config } },
  });
  await writeSecretFile(tc.paths, '/etc/dsvm-agent/join-password', PASSWORD);
  await mkdir(tc.paths.pamDir, { recursive: true });
  await writeFile(tc.paths.krb5Conf, '[libdefaults]\n\tdefault_realm = ATHENA.MIT.EDU\n');
  await writeFile(tc.paths.nsswitchConf, 'passwd: files systemd\ngroup: files systemd\nshadow: files\n');
  tc.ctx.state.facts.hostname = 'dsvm-lab-client-0001';
  // The version-specific answers first: the fake runner takes the first match.
  w.ldap ??= {};
  for (const c of versionCommands(w.ldap, w.existing, PASSWORD)) tc.runner.on(c);
  for (const c of adcliCommands(tc.paths.krb5Keytab, w, path.join(tc.paths.pamDir, 'common-session'))) tc.runner.on(c);
  // What this run's preflight passes the join: the DC it just found.
  if (opts.preflightDc !== false)
    tc.ctx.state.facts.domainController = {
      host: DC,
      address: '10.77.0.2',
      clockOffsetMs: 0,
      foundAt: new Date(tc.ctx.clock.now()).toISOString(),
    };
  return tc;
}

export const primary = primaryComputerName({ configured: 'auto', hostname: 'dsvm-lab-client-0001' }).name;
