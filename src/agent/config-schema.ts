import { z } from 'zod';
import {
  controlCharProblem,
  cronPatternProblem,
  groupNameProblem,
  metricsTextfileProblem,
  MIN_USER_UID,
  sssdOptionNameProblem,
  sssdOptionValueProblem,
  systemDirProblem,
  worldWritableProblem,
} from './config-values.js';
import { proxyUrlProblem } from './azure/proxy.js';

/**
 * The one schema of /etc/dsvm-agent/config.yaml. The CLI validates with it and
 * `make schema` exports it as packaging/config.schema.json for editors.
 * Every error message says what is wrong and how to fix it.
 */

// Message style: "<what is wrong>: <how to fix it>". Rules with a message
// here know the key; every other problem (a wrong type, a missing key, a
// number out of range) is worded from the issue in config.ts, which uses the
// descriptions below to name what belongs there.

/** A check from config-values.ts (shared with the renderers) as a schema rule. */
const rule =
  (problem: (v: string) => string | undefined) =>
  (v: string, ctx: z.RefinementCtx): void => {
    const message = problem(v);
    if (message) ctx.addIssue({ code: 'custom', message });
  };

const absolutePath = (what: string) =>
  z
    .string()
    .regex(/^\/[^\0]*$/, { error: `must be an absolute path: write the full path to ${what}, starting with "/"` })
    .refine((p) => !p.split('/').includes('..'), { error: `must not contain ".." segments: write the real path to ${what}` })
    .superRefine(rule((p) => controlCharProblem(p, 'the files it is written to')))
    .describe(`the absolute path to ${what}`);

const httpUrl = (what: string, example: string) =>
  z
    .string()
    .refine(
      (u) => {
        try {
          const url = new URL(u);
          return url.protocol === 'https:' || url.protocol === 'http:';
        } catch {
          return false;
        }
      },
      { error: `must be an http(s) URL: write the URL of ${what}, e.g. ${example}` },
    )
    .describe(`the URL of ${what}, e.g. ${example}`);

const hostName = (what: string, example: string) =>
  z
    .string()
    .regex(/^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/, {
      error: `must be a DNS host name: write ${what} such as ${example} (letters, digits, "-" and "." only)`,
    })
    .describe(`${what}, e.g. ${example}`);

const domainName = hostName('the AD DNS domain name', 'contoso.com')
  .refine((d) => d.includes('.'), {
    error: 'must be the AD DNS domain name with at least two labels, not the NetBIOS name: write e.g. contoso.com',
  })
  .describe('the AD DNS domain name, e.g. contoso.com');

const guid = /^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$/;

const fileSecret = z.object({ file: absolutePath('a root-owned file (mode 0600) holding the secret') }).strict();
const keyVaultSecret = z
  .object({
    keyVault: z
      .object({
        vaultUrl: httpUrl('the Key Vault', 'https://contoso-kv.vault.azure.net'),
        name: z
          .string()
          .regex(/^[0-9a-zA-Z-]{1,127}$/, { error: 'must be a Key Vault secret name: use 1-127 letters, digits or "-"' })
          .describe('the name of the secret in the vault'),
        version: z
          .string()
          .regex(/^[0-9a-f]{32}$/i, { error: 'must be a secret version: write its 32 hex digits, or remove version to read the latest' })
          .optional()
          .describe('a fixed version of the secret (32 hex digits; default: the latest)'),
      })
      .strict()
      .describe('the Key Vault secret, read with the VM managed identity'),
  })
  .strict();

/** Wording for a reference given as anything but a mapping: it may be the secret itself, so it is never echoed. */
const notAReference = (forms: string) => (iss: { input?: unknown }) =>
  iss.input === null
    ? `is empty: write a reference: ${forms}`
    : typeof iss.input === 'object' && !Array.isArray(iss.input)
      ? `is not a secret reference: write ${forms}`
      : `must be a reference to the secret, never the secret itself: use ${forms}, and remove the value from this file`;

/** A reference to a secret; the value itself never appears in the config. */
export const secretRef = z
  .union([fileSecret, keyVaultSecret], {
    error: notAReference('{file: /etc/dsvm-agent/NAME} (root-owned, mode 0600) or {keyVault: {vaultUrl: https://..., name: ...}}'),
  })
  .describe('a secret reference: {file: /etc/dsvm-agent/NAME} or {keyVault: {vaultUrl, name}}');

const armListKeys = z
  .object({
    armListKeys: z
      .object({
        subscriptionId: z
          .string()
          .regex(guid, { error: 'must be a subscription id: write its GUID, e.g. 00000000-0000-0000-0000-000000000000' })
          .describe('the subscription id (a GUID) of the storage account'),
        resourceGroup: z
          .string()
          .regex(/^[-\w._()]{1,90}$/, { error: 'must be a resource group name: use 1-90 letters, digits and "-_.()"' })
          .describe('the resource group of the storage account'),
        keyName: z
          .enum(['key1', 'key2'], { error: 'must be key1 or key2: pick the storage account key to mount with' })
          .default('key1')
          .describe('which of the two storage account keys to use'),
      })
      .strict()
      .describe('the storage account, whose key ARM lists through the VM managed identity'),
  })
  .strict();

/** The storage key: a secret reference, or ARM listKeys through the managed identity. */
export const storageKeyRef = z
  .union([fileSecret, keyVaultSecret, armListKeys], {
    error: notAReference(
      '{file: /etc/dsvm-agent/NAME}, {keyVault: {vaultUrl: https://..., name: ...}} or {armListKeys: {subscriptionId: ..., resourceGroup: ...}}',
    ),
  })
  .describe('the storage key: {file: ...}, {keyVault: {...}} or {armListKeys: {subscriptionId, resourceGroup}}');

/** NetBIOS computer names: at most 15 characters; AD refuses longer ones or truncates them silently elsewhere. */
export const computerNamePattern = /^[A-Za-z0-9][A-Za-z0-9-]{0,14}$/;

const computerName = z.union(
  [
    z.literal('auto'),
    z
      .string()
      .max(15, { error: 'is longer than 15 characters (the NetBIOS limit): choose a shorter name or use auto' })
      .regex(computerNamePattern, {
        error: 'must be "auto" or a NetBIOS name: use 1-15 letters, digits and "-", starting with a letter or digit',
      })
      .refine((n) => !/^[0-9]+$/.test(n), { error: 'must not be only digits (AD rejects it): add a letter' }),
  ],
  { error: 'must be "auto" or a computer name: write auto, or a name of at most 15 letters, digits and "-"' },
);

// YAML reads an unquoted 0770 as the number 770, not as a mode.
const octalMode = z
  .string({
    error: (iss) =>
      iss.code === 'invalid_type' && typeof iss.input === 'number'
        ? 'must be a quoted octal mode, not a number: write it in quotes, e.g. "0770"'
        : undefined,
  })
  .regex(/^0?[0-7]{3}$/, { error: 'must be an octal mode: write e.g. "0770" (digits 0-7)' });

const idOrName = (what: string) =>
  z.union(
    [
      z.number().int().min(0),
      // "," and "=" would add mount options (uid=x,setuids) to the share's mount unit.
      z.string().regex(/^[^\s:/,=]+$/, { error: `must be a ${what} name or id: remove spaces, ",", "=", ":" and "/"` }),
    ],
    { error: `must be a numeric ${what} id or a ${what} name: write e.g. ${what === 'user' ? '1000 or root' : '1000 or dsvm-users'}` },
  );

const cronSchedule = z
  .string()
  .regex(/^(\S+\s+){4,5}\S+$/, {
    error: 'must be a cron schedule with 5 or 6 fields: write e.g. "*/30 * * * * *" (in quotes)',
    abort: true,
  })
  // The pattern as the daemon's scheduler reads it: a field out of range
  // ("*/90" seconds, month 13) fails here, not when the daemon starts.
  .superRefine(rule(cronPatternProblem))
  .describe('a cron schedule, e.g. "*/30 * * * * *" (5 or 6 fields, seconds first when 6)');

const listen = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[^:\s]+):(\d{1,5})$/, { error: 'must be HOST:PORT: write e.g. 127.0.0.1:8642' })
  .refine((v) => Number(v.slice(v.lastIndexOf(':') + 1)) <= 65535, { error: 'has a port above 65535: use a port from 1 to 65535' })
  .describe('the HOST:PORT of the health endpoint, e.g. 127.0.0.1:8642');

const groupNames = (what: string) =>
  z
    .array(z.string().min(1, { error: 'is empty: write a group name or remove the item' }).superRefine(rule(groupNameProblem)))
    .default([])
    .describe(what);

/**
 * Who may use the VM's managed identity. IMDS hands a
 * token to any local process, so any user on a shared VM could read the join
 * password from Key Vault or list the storage keys through ARM. "auto" (the
 * default) restricts IMDS to root and allowGroups exactly when the agent
 * itself reads a secret through the identity (a keyVault or armListKeys
 * reference): then the identity holds secrets that must not leak, and data
 * scientists who need it are re-admitted by group. With only file secrets the
 * agent does not know what the identity may do and leaves it open, as Azure
 * does (notebooks using azure-identity keep working). docs/security.md.
 */
const imdsAccess = z
  .object({
    restrict: z
      .union([z.boolean(), z.literal('auto')], {
        error: 'must be auto, true or false: write one of them (auto restricts IMDS when a secret is read through the managed identity)',
      })
      .default('auto')
      .describe(
        'whether only root and allowGroups may reach IMDS: auto (when a secret reference uses the managed identity), true or false',
      ),
    allowGroups: z
      .array(
        z.union(
          [
            z.number().int().min(1, { error: 'must be a gid of 1 or more: remove 0 (root is always allowed)' }).max(4294967294),
            z
              .string()
              .min(1, { error: 'is empty: write a group name or remove the item' })
              // The name goes to getent as one argv item and only its numeric gid reaches the
              // ruleset, but a control character is never a real group name: refuse it early.
              .refine((v) => [...v].every((c) => c >= ' ' && c !== '\u007f'), {
                error: 'must not contain control characters (newline, tab): write the group name',
              }),
          ],
          { error: 'must be a group name or a numeric gid: write e.g. dsvm-identity-users or 2001' },
        ),
      )
      .default([])
      .describe(
        "groups (names or gids) whose members may reach IMDS besides root; nftables matches the process's effective gid only, not supplementary groups",
      ),
  })
  .strict()
  .describe('who may reach the Instance Metadata Service (the managed identity) on this VM');

const IMDS_ACCESS_DEFAULT = { restrict: 'auto' as const, allowGroups: [] as (string | number)[] };

/** The firewall rule matches an IPv4 address and a TCP port: a host name cannot be guarded. */
function imdsEndpointGuardable(a: { imdsEndpoint: string; imdsAccess: { restrict: boolean | 'auto' } }, ctx: z.RefinementCtx): void {
  if (a.imdsAccess.restrict === false) return;
  let host = '';
  try {
    host = new URL(a.imdsEndpoint).hostname;
  } catch {
    return; // imdsEndpoint's own rule reports it
  }
  if (!/^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/.test(host)) {
    ctx.addIssue({
      code: 'custom',
      path: ['imdsEndpoint'],
      message:
        'must name an IPv4 address while azure.imdsAccess.restrict is not false (the firewall rule matches an address): write e.g. http://169.254.169.254, or set azure.imdsAccess.restrict: false',
    });
  }
}

export const checkIds = [
  'domain-trust',
  'identity-lookup',
  'sssd',
  'share-mounted',
  'share-quota',
  'clock',
  'disk-space',
  'imds-guard',
] as const;

const checkId = z.enum(checkIds, { error: `must be a check id: use one of ${checkIds.join(', ')}` });

export const configSchema = z
  .object({
    identity: z
      .object({
        clientId: z
          .string()
          .regex(guid, { error: 'must be a client id (a GUID): copy the client id of a user-assigned managed identity attached to the VM' })
          .optional()
          .describe('the client id (a GUID) of a user-assigned managed identity attached to the VM'),
      })
      .strict()
      .default({})
      .describe('the managed identity for Key Vault and ARM; default: the system-assigned one'),
    azure: z
      .object({
        imdsEndpoint: httpUrl('the Instance Metadata Service', 'http://169.254.169.254').default('http://169.254.169.254'),
        managementEndpoint: httpUrl('Azure Resource Manager', 'https://management.azure.com').default('https://management.azure.com'),
        imdsAccess: imdsAccess.default(IMDS_ACCESS_DEFAULT),
        proxy: z
          .string()
          .superRefine((v, ctx) => {
            const message = v === 'none' ? undefined : proxyUrlProblem(v);
            // secret: the value is never echoed after the message, as it may hold a password.
            if (message) ctx.addIssue({ code: 'custom', message, params: { secret: true } });
          })
          .optional()
          .describe(
            "the HTTP(S) proxy for Key Vault, ARM and Files REST calls, e.g. http://proxy.corp:3128 (no user:password), or none; unset: the unit's https_proxy/HTTPS_PROXY. NO_PROXY applies; IMDS is always direct",
          ),
      })
      .strict()
      .superRefine(imdsEndpointGuardable)
      .prefault({})
      .describe("Azure endpoints; the defaults are Azure's public cloud"),
    domain: z
      .object({
        name: domainName,
        joinUser: z
          .string()
          .regex(/^[^\s\\/:*?"<>|]+(@[A-Za-z0-9.-]+)?$/, {
            error: 'must be a user name: write e.g. dsvm-join or dsvm-join@CONTOSO.COM (no spaces or backslashes)',
          })
          .optional()
          .describe('the account that joins computers, e.g. dsvm-join@CONTOSO.COM'),
        joinPassword: secretRef.optional().describe("a reference to the join account's password"),
        oneTimePassword: secretRef
          .optional()
          .describe('pre-staged computer account one-time password (adcli --one-time-password); replaces joinUser/joinPassword'),
        computerOu: z
          .string()
          .regex(/^(OU|CN)=[^,]+(,\s*(OU|CN|DC)=[^,]+)*$/i, {
            error: 'must be a distinguished name: write e.g. OU=DSVM,DC=contoso,DC=com',
          })
          .optional()
          .describe("the OU for the computer object, e.g. OU=DSVM,DC=contoso,DC=com (default: the domain's Computers container)"),
        computerName: computerName.default('auto').describe('"auto" or an explicit name of at most 15 characters'),
        allowGroups: groupNames('the groups allowed to log in, e.g. [dsvm-users] ([]: every domain user)'),
        sudoGroups: groupNames('the groups with full sudo on this VM, e.g. ["AAD DC Administrators"]'),
        fullyQualifiedNames: z
          .boolean()
          .default(false)
          .describe('whether users log in as alice@contoso.com (true) rather than alice (false)'),
        homeTemplate: z
          .string()
          .regex(/^\/\S*$/, { error: 'must be an absolute path template: write e.g. /home/%u' })
          .superRefine(rule((v) => controlCharProblem(v, 'sssd.conf')))
          .default('/home/%u')
          .describe('the home directory of domain users, e.g. /home/%u (%u: user, %d: domain)'),
        shell: absolutePath('the login shell').default('/bin/bash').describe('the login shell of domain users, e.g. /bin/bash'),
        idMapping: z
          .enum(['auto', 'posix'], {
            error:
              'must be auto or posix: pick auto (uids and gids computed from the SIDs) or posix (the uidNumber and gidNumber AD holds)',
          })
          .default('auto')
          .describe(
            'auto: uids and gids computed from the SIDs (sssd ldap_id_mapping); posix: the uidNumber/gidNumber AD holds, the same on every machine (NFS, HPC)',
          ),
        denyGroups: groupNames(
          'groups whose members may not log in, even when they are in allowGroups or sudoGroups (sssd simple_deny_groups)',
        ),
        dnsUpdate: z
          .boolean()
          .default(true)
          .describe(
            "whether sssd registers this VM's name in AD's DNS (dyndns_update); when true, scale-in and deprovision --leave-domain remove the record",
          ),
        sssdOptions: z
          .record(
            z.string(),
            z.union([z.string().superRefine(rule(sssdOptionValueProblem)), z.number(), z.boolean()], {
              error: 'must be a string, a number or true/false: write the value as sssd.conf takes it, e.g. ldap_referrals: false',
            }),
          )
          // Keys checked here rather than in the record's key schema: zod
          // reports a key's own issue only as "invalid key", without its words.
          .superRefine((options, ctx) => {
            for (const name of Object.keys(options)) {
              const message = sssdOptionNameProblem(name);
              if (message) ctx.addIssue({ code: 'custom', path: [name], message });
            }
          })
          .default({})
          .describe(
            "extra options for sssd.conf's [domain/...] section, e.g. {ldap_referrals: false}; checked with sssctl config-check before use; options the agent sets are refused",
          ),
      })
      .strict()
      .superRefine((d, ctx) => {
        if (d.oneTimePassword === undefined && d.joinPassword === undefined) {
          ctx.addIssue({
            code: 'custom',
            path: ['joinPassword'],
            message: 'is required (or oneTimePassword for a pre-staged computer account): add a secret reference',
          });
        }
        if (d.joinPassword !== undefined && d.joinUser === undefined) {
          ctx.addIssue({ code: 'custom', path: ['joinUser'], message: 'is required with joinPassword: add the join account name' });
        }
        const allowed = new Set([...d.allowGroups, ...d.sudoGroups].map((g) => g.toLowerCase()));
        d.denyGroups.forEach((g, i) => {
          if (allowed.has(g.toLowerCase()))
            ctx.addIssue({
              code: 'custom',
              path: ['denyGroups', i],
              message: 'is also in allowGroups or sudoGroups (deny wins, so its members could never log in): remove it from one list',
            });
        });
        if (d.oneTimePassword !== undefined && d.joinPassword !== undefined) {
          ctx.addIssue({
            code: 'custom',
            path: ['oneTimePassword'],
            message: 'cannot be combined with joinPassword: keep one of them',
          });
        }
      })
      .describe('the Active Directory domain to join'),
    share: z
      .object({
        type: z.enum(['smb', 'nfs'], { error: 'must be smb or nfs: pick one' }).default('smb').describe('smb (SMB 3.x) or nfs (NFS 4.1)'),
        account: z
          .string()
          .regex(/^[a-z0-9]{3,24}$/, { error: 'must be a storage account name: use 3-24 lower-case letters and digits' })
          .describe('the storage account name'),
        name: z
          .string()
          .regex(/^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/, {
            error: 'must be a file share name: use 3-63 lower-case letters, digits and single "-"',
          })
          .describe('the file share name'),
        endpointSuffix: hostName('the storage endpoint suffix', 'core.windows.net').default('core.windows.net'),
        host: hostName('the host name of the share', 'contosofiles.privatelink.file.core.windows.net')
          .optional()
          .describe('the host to mount from, e.g. a private endpoint (default: ACCOUNT.file.ENDPOINTSUFFIX)'),
        filesEndpoint: httpUrl('the Azure Files REST endpoint', 'https://contosofiles.file.core.windows.net')
          .optional()
          .describe(
            'the Azure Files REST endpoint for usage and folder creation (default: https://ACCOUNT.file.ENDPOINTSUFFIX; path-style https://HOST:PORT/ACCOUNT for a local test server)',
          ),
        mountPoint: absolutePath('the mount point')
          .superRefine(rule(systemDirProblem))
          .default('/data/workspace')
          .describe('the absolute path to the mount point'),
        auth: z
          .enum(['key', 'kerberos'], { error: 'must be key or kerberos: pick one' })
          .default('key')
          .describe('key or kerberos (SMB only)'),
        key: storageKeyRef.optional(),
        uid: idOrName('user').default(0).describe('the owner of the files of a key-mounted share: a user name or uid'),
        gid: idOrName('group').optional().describe('the group of the files of a key-mounted share: a group name or gid'),
        dirMode: octalMode
          .superRefine(rule(worldWritableProblem))
          .default('0775')
          .describe('the mode of directories on a key-mounted share, quoted, e.g. "0775"'),
        fileMode: octalMode
          .superRefine(rule(worldWritableProblem))
          .default('0664')
          .describe('the mode of files on a key-mounted share, quoted, e.g. "0664"'),
        options: z
          .array(
            z.string().regex(/^[a-z_0-9]+(=[^,\s]+)?$/, {
              error: 'must be a mount option: write NAME or NAME=VALUE in lower case without spaces or commas, e.g. actimeo=30',
            }),
          )
          .default([])
          .describe("extra mount options, e.g. [actimeo=30]; each replaces the agent's option of the same name"),
      })
      .strict()
      .superRefine((s, ctx) => {
        if (s.type === 'smb' && s.auth === 'key' && s.key === undefined) {
          ctx.addIssue({
            code: 'custom',
            path: ['key'],
            message: 'is required for an SMB share with auth: key: add {keyVault: ...}, {file: ...} or {armListKeys: ...}',
          });
        }
        if (s.type === 'nfs' && s.key !== undefined) {
          ctx.addIssue({
            code: 'custom',
            path: ['key'],
            message: 'must not be set for NFS: remove it (NFS 4.1 shares use network rules, not keys)',
          });
        }
        if (s.type === 'nfs' && s.auth === 'kerberos') {
          ctx.addIssue({ code: 'custom', path: ['auth'], message: 'kerberos is for SMB only: use type: smb or remove auth' });
        }
        s.options.forEach((o, i) => {
          if (/^(password|password2|pass|credentials|username|user)=/.test(o)) {
            ctx.addIssue({
              code: 'custom',
              path: ['options', i],
              message: `must not carry credentials ("${o.split('=')[0]}="): remove it; the agent writes a root-only credentials file`,
              // The value after "=" is a password or a user name: not echoed.
              params: { secret: true },
            });
          }
        });
      })
      .optional()
      .describe('the Azure Files share; without it, workspaces are local folders'),
    workspace: z
      .object({
        root: absolutePath('the workspace root')
          .superRefine(rule(systemDirProblem))
          .default('/data/workspace')
          .describe('the absolute path to the workspace root'),
        notebooks: z
          .string()
          .regex(/^[^/\0]+$/, { error: 'must be a single folder name: remove "/", e.g. notebooks' })
          .refine((v) => v !== '.' && v !== '..', { error: 'must not be "." or "..": write a folder name such as notebooks' })
          .default('notebooks')
          .describe("the name of the folder made in each user's workspace folder, e.g. notebooks"),
        homeLink: z
          .string()
          .regex(/^[^/\0][^\0]*[^/\0]$|^[^/\0]$/, { error: 'must be a relative path inside $HOME: write e.g. notebooks/remote' })
          .refine((v) => !v.split('/').some((p) => p === '..' || p === '.' || p === ''), {
            error: 'must not contain ".", ".." or empty segments: write e.g. notebooks/remote',
          })
          .default('notebooks/remote')
          .describe('the path of the link made in $HOME, relative to it, e.g. notebooks/remote'),
        minUid: z
          .number()
          .int()
          // Fixed, not read from this machine's /etc/login.defs: `config check` must say the same on the
          // build machine as on the VM. Domain uids from sssd's id mapping are far above it.
          .min(MIN_USER_UID, {
            error: `must be at least ${MIN_USER_UID} (uids below that are system accounts on Debian and Ubuntu, SYS_UID_MAX 999 in /etc/login.defs, and the agent never acts for them): raise it to ${MIN_USER_UID} or more`,
          })
          .default(1000)
          .describe('the lowest uid the agent acts for'),
        loginTimeoutMs: z
          .number()
          .int()
          .min(100, { error: 'must be at least 100: raise it (the login hook needs that long to start)' })
          .max(60000, { error: 'must be at most 60000: lower it (a login must not wait longer)' })
          .default(3000)
          .describe('the longest a login waits for the agent, in milliseconds'),
        createHome: z.boolean().default(true).describe('whether a login creates a missing $HOME (mkhomedir_helper)'),
      })
      .strict()
      .prefault({})
      .describe('what each login makes'),
    health: z
      .object({
        listen: listen.default('127.0.0.1:8642'),
        allowNonLoopback: z.boolean().default(false).describe('whether health.listen may be an address other than loopback'),
        initializingGraceSec: z
          .number()
          .int()
          .min(0)
          .default(1800)
          .describe('how long first boot may take, in seconds, before health turns from Initializing to Unhealthy'),
        unhealthyOn: z
          .array(checkId)
          .default(['domain-trust', 'identity-lookup', 'sssd', 'share-mounted'])
          .describe('the failing checks that make /health Unhealthy'),
        identityProbe: z
          .string()
          .min(1, { error: 'is empty: write a domain user or group name, or remove the key' })
          .optional()
          .describe('a domain user or group for the identity-lookup check to resolve (default: the first of domain.allowGroups)'),
        checks: z
          .partialRecord(
            checkId,
            z
              .object({
                schedule: cronSchedule.optional(),
                enabled: z.boolean().default(true).describe('whether the check runs'),
              })
              .strict(),
          )
          .default({})
          .describe('per check id: schedule and enabled'),
        metricsTextfile: absolutePath('the node-exporter textfile')
          .superRefine(rule(metricsTextfileProblem))
          .optional()
          .describe('the file Prometheus metrics are written to (default: /var/lib/prometheus/node-exporter/dsvm-agent.prom)'),
      })
      .strict()
      .superRefine((h, ctx) => {
        const host = h.listen.slice(0, h.listen.lastIndexOf(':')).replace(/^\[|\]$/g, '');
        const loopback = host === 'localhost' || host === '::1' || /^127\./.test(host);
        if (!loopback && !h.allowNonLoopback) {
          ctx.addIssue({
            code: 'custom',
            path: ['listen'],
            message: `is not on a loopback address: use 127.0.0.1:PORT, or set health.allowNonLoopback: true deliberately`,
          });
        }
      })
      .prefault({})
      .describe('the health endpoint and the periodic checks'),
    repair: z
      .object({
        enabled: z.boolean().default(true).describe('whether failing checks are repaired (restart sssd, remount, rejoin)'),
        maxAttempts: z.number().int().min(1).default(3).describe('the repairs of one kind allowed per window'),
        windowSec: z.number().int().min(60).default(3600).describe('the window of maxAttempts, in seconds'),
        failuresBeforeRepair: z
          .number()
          .int()
          .min(1)
          .max(100)
          .default(3)
          .describe('the non-transient failures in a row of a check before its repair starts (timeouts and an unreachable DC never count)'),
        jitterSec: z
          .number()
          .int()
          .min(0)
          .max(3600)
          .default(60)
          .describe('the longest random wait before a repair, so the VMs of a pool do not repair at the same moment'),
      })
      .strict()
      .prefault({})
      .describe('self-repair and its rate limit'),
    scheduledEvents: z
      .object({
        enabled: z
          .boolean()
          .default(true)
          .describe(
            'whether the agent handles Terminate and Preempt for this VM: close handles, unmount, remove its DNS record, leave the domain, approve',
          ),
        pollSec: z.number().int().min(1).max(300).default(10).describe('the seconds between polls of scheduled events'),
      })
      .strict()
      .prefault({})
      .describe('scale-in and eviction handling (Terminate, Preempt)'),
    sweep: z
      .object({
        namePrefix: z
          .string()
          .regex(/^[A-Za-z0-9][A-Za-z0-9-]{0,14}$/, {
            error: 'must be the start of a computer name: use 1-15 letters, digits or "-", e.g. DSVMPOOL-',
          })
          .optional()
          .describe('the start every computer name of this pool shares, e.g. DSVMPOOL- (default: this VM\'s name up to its last "-")'),
        maxPasswordAgeDays: z
          .number()
          .int()
          .min(31, { error: "must be above sssd's 30-day machine password renewal: use 31 or more (45 is the default)" })
          .max(3650)
          .default(45)
          .describe('without ARM rights: a pool object whose machine password is older than this many days is stale'),
      })
      .strict()
      .prefault({})
      .describe('dsvm-agent sweep: deleting the computer objects of VMs of this pool that no longer exist'),
    logging: z
      .object({
        level: z
          .enum(['error', 'warn', 'info', 'debug'], { error: 'must be error, warn, info or debug: pick one' })
          .default('info')
          .describe('the least severe level written'),
      })
      .strict()
      .prefault({})
      .describe('logging'),
  })
  .strict();

export type Config = z.output<typeof configSchema>;
export type SecretRef = z.output<typeof secretRef>;
export type StorageKeyRef = z.output<typeof storageKeyRef>;
export type ShareConfig = NonNullable<Config['share']>;
export type CheckId = (typeof checkIds)[number];
