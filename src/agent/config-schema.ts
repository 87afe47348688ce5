import { z } from 'zod';

/**
 * The one schema of /etc/dsvm-agent/config.yaml. The CLI validates with it and
 * `make schema` exports it as packaging/config.schema.json for editors.
 * Every error message says what is wrong and how to fix it.
 */

const absolutePath = (what: string) =>
  z
    .string({ error: `must be an absolute path to ${what}` })
    .regex(/^\/[^\0]*$/, { error: `must be an absolute path (starting with "/") to ${what}` })
    .refine((p) => !p.split('/').includes('..'), { error: 'must not contain ".." segments: write the real path' });

const httpUrl = (what: string) =>
  z.string({ error: `must be the URL of ${what}` }).refine(
    (u) => {
      try {
        const url = new URL(u);
        return url.protocol === 'https:' || url.protocol === 'http:';
      } catch {
        return false;
      }
    },
    { error: `must be an http(s) URL of ${what}, e.g. https://contoso-kv.vault.azure.net` },
  );

const hostName = z
  .string({ error: 'must be a DNS host name' })
  .regex(/^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/, {
    error: 'must be a DNS host name such as contoso.com (letters, digits, "-" and "." only)',
  });

const domainName = hostName.refine((d) => d.includes('.'), {
  error: 'must be the AD DNS domain name with at least two labels, e.g. contoso.com (not the NetBIOS name)',
});

const fileSecret = z.object({ file: absolutePath('a root-owned file (mode 0600) holding the secret') }).strict();
const keyVaultSecret = z
  .object({
    keyVault: z
      .object({
        vaultUrl: httpUrl('the Key Vault'),
        name: z
          .string({ error: 'must be the Key Vault secret name' })
          .regex(/^[0-9a-zA-Z-]{1,127}$/, { error: 'must be a Key Vault secret name: 1-127 letters, digits or "-"' }),
        version: z
          .string()
          .regex(/^[0-9a-f]{32}$/i, { error: 'must be a 32-hex-digit secret version' })
          .optional(),
      })
      .strict(),
  })
  .strict();

/** A reference to a secret; the value itself never appears in the config. */
export const secretRef = z.union([fileSecret, keyVaultSecret], {
  error: (iss) =>
    typeof iss.input === 'string'
      ? 'a secret must be a reference, not the value: use {file: /etc/dsvm-agent/NAME} (root-owned, 0600) or {keyVault: {vaultUrl: ..., name: ...}}, and remove the value from this file'
      : 'must be a secret reference: {file: /abs/path} or {keyVault: {vaultUrl: https://..., name: ...}}',
});

const armListKeys = z
  .object({
    armListKeys: z
      .object({
        subscriptionId: z
          .string({ error: 'must be the subscription id (a GUID)' })
          .regex(/^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$/, { error: 'must be a subscription id (a GUID)' }),
        resourceGroup: z
          .string({ error: 'must be the resource group of the storage account' })
          .regex(/^[-\w._()]{1,90}$/, { error: 'must be a resource group name (1-90 letters, digits, "-_.()")' }),
        keyName: z.enum(['key1', 'key2']).default('key1'),
      })
      .strict(),
  })
  .strict();

/** The storage key: a secret reference, or ARM listKeys through the managed identity. */
export const storageKeyRef = z.union([fileSecret, keyVaultSecret, armListKeys], {
  error: (iss) =>
    typeof iss.input === 'string'
      ? 'a storage key must be a reference, not the value: use {file: ...}, {keyVault: {...}} or {armListKeys: {subscriptionId, resourceGroup}}, and remove the value from this file'
      : 'must be {file: /abs/path}, {keyVault: {vaultUrl, name}} or {armListKeys: {subscriptionId, resourceGroup}}',
});

/** NetBIOS computer names: at most 15 characters; AD refuses longer ones or truncates them silently elsewhere. */
export const computerNamePattern = /^[A-Za-z0-9][A-Za-z0-9-]{0,14}$/;

const computerName = z.union(
  [
    z.literal('auto'),
    z
      .string()
      .max(15, { error: 'must be "auto" or at most 15 characters (NetBIOS limit): choose a shorter name or use auto' })
      .regex(computerNamePattern, {
        error: 'must be "auto" or 1-15 letters, digits and "-", starting with a letter or digit',
      })
      .refine((n) => !/^[0-9]+$/.test(n), { error: 'must not be only digits (AD rejects it): add letters' }),
  ],
  { error: 'must be "auto" or a name of at most 15 letters, digits and "-"' },
);

const octalMode = z
  .string({ error: 'must be an octal mode string such as "0770" (quote it in YAML)' })
  .regex(/^0?[0-7]{3}$/, { error: 'must be an octal mode such as "0770"' });

const idOrName = z.union([z.number().int().min(0), z.string().regex(/^[^\s:/]+$/)], {
  error: 'must be a numeric id or a user/group name',
});

const cronSchedule = z
  .string({ error: 'must be a cron schedule such as "*/30 * * * * *"' })
  .regex(/^(\S+\s+){4,5}\S+$/, { error: 'must be a cron schedule with 5 or 6 fields, e.g. "*/30 * * * * *"' });

const listen = z
  .string({ error: 'must be HOST:PORT, e.g. 127.0.0.1:8642' })
  .regex(/^(\[[0-9a-fA-F:]+\]|[^:\s]+):(\d{1,5})$/, { error: 'must be HOST:PORT, e.g. 127.0.0.1:8642' })
  .refine((v) => Number(v.slice(v.lastIndexOf(':') + 1)) <= 65535, { error: 'port must be at most 65535' });

export const checkIds = ['domain-trust', 'identity-lookup', 'sssd', 'share-mounted', 'share-quota', 'clock', 'disk-space'] as const;

export const configSchema = z
  .object({
    identity: z
      .object({
        clientId: z
          .string()
          .regex(/^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$/, {
            error: 'must be the client id (a GUID) of a user-assigned managed identity attached to the VM',
          })
          .optional(),
      })
      .strict()
      .default({}),
    azure: z
      .object({
        imdsEndpoint: httpUrl('the Instance Metadata Service').default('http://169.254.169.254'),
        managementEndpoint: httpUrl('Azure Resource Manager').default('https://management.azure.com'),
      })
      .strict()
      .default({ imdsEndpoint: 'http://169.254.169.254', managementEndpoint: 'https://management.azure.com' }),
    domain: z
      .object({
        name: domainName,
        joinUser: z
          .string({ error: 'must be the account that joins computers, e.g. dsvm-join@CONTOSO.COM' })
          .regex(/^[^\s\\/:*?"<>|]+(@[A-Za-z0-9.-]+)?$/, {
            error: 'must be a user name such as dsvm-join or dsvm-join@CONTOSO.COM (no spaces or backslashes)',
          })
          .optional(),
        joinPassword: secretRef.optional(),
        oneTimePassword: secretRef
          .optional()
          .describe('pre-staged computer account one-time password (adcli --one-time-password); replaces joinUser/joinPassword'),
        computerOu: z
          .string()
          .regex(/^(OU|CN)=[^,]+(,\s*(OU|CN|DC)=[^,]+)*$/i, {
            error: 'must be a distinguished name such as OU=DSVM,DC=contoso,DC=com',
          })
          .optional(),
        computerName: computerName.default('auto'),
        allowGroups: z.array(z.string().min(1), { error: 'must be a list of group names' }).default([]),
        sudoGroups: z.array(z.string().min(1), { error: 'must be a list of group names' }).default([]),
        fullyQualifiedNames: z.boolean({ error: 'must be true or false' }).default(false),
        homeTemplate: z
          .string()
          .regex(/^\/\S*$/, { error: 'must be an absolute path template such as /home/%u' })
          .default('/home/%u'),
        shell: absolutePath('the login shell').default('/bin/bash'),
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
        if (d.oneTimePassword !== undefined && d.joinPassword !== undefined) {
          ctx.addIssue({
            code: 'custom',
            path: ['oneTimePassword'],
            message: 'cannot be combined with joinPassword: keep one of them',
          });
        }
      }),
    share: z
      .object({
        type: z.enum(['smb', 'nfs'], { error: 'must be smb or nfs' }).default('smb'),
        account: z
          .string({ error: 'must be the storage account name' })
          .regex(/^[a-z0-9]{3,24}$/, { error: 'must be a storage account name: 3-24 lower-case letters and digits' }),
        name: z.string({ error: 'must be the file share name' }).regex(/^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/, {
          error: 'must be a file share name: 3-63 lower-case letters, digits and single "-"',
        }),
        endpointSuffix: hostName.default('core.windows.net'),
        host: hostName.optional(),
        filesEndpoint: httpUrl('the Azure Files REST endpoint (default https://ACCOUNT.file.ENDPOINTSUFFIX)')
          .optional()
          .describe('Files REST endpoint for usage and folder creation; path-style (https://host:port/ACCOUNT) for a local test server'),
        mountPoint: absolutePath('the mount point').default('/data/workspace'),
        auth: z.enum(['key', 'kerberos'], { error: 'must be key or kerberos' }).default('key'),
        key: storageKeyRef.optional(),
        uid: idOrName.default(0),
        gid: idOrName.optional(),
        dirMode: octalMode.default('0775'),
        fileMode: octalMode.default('0664'),
        options: z.array(z.string().regex(/^[a-z_0-9]+(=[^,\s]+)?$/), { error: 'must be a list of mount options' }).default([]),
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
            message: 'must not be set for NFS: NFS 4.1 shares use network rules, not keys; remove it',
          });
        }
        if (s.type === 'nfs' && s.auth === 'kerberos') {
          ctx.addIssue({ code: 'custom', path: ['auth'], message: 'kerberos is for SMB only: use type: smb or remove auth' });
        }
        for (const o of s.options) {
          if (/^(password|password2|pass|credentials|username|user)=/.test(o)) {
            ctx.addIssue({
              code: 'custom',
              path: ['options'],
              message: `must not carry credentials ("${o.split('=')[0]}="): the agent writes a root-only credentials file`,
            });
          }
        }
      })
      .optional(),
    workspace: z
      .object({
        root: absolutePath('the workspace root').default('/data/workspace'),
        notebooks: z
          .string()
          .regex(/^[^/\0]+$/, { error: 'must be a single folder name without "/"' })
          .refine((v) => v !== '.' && v !== '..', { error: 'must not be "." or ".."' })
          .default('notebooks'),
        homeLink: z
          .string()
          .regex(/^[^/\0][^\0]*[^/\0]$|^[^/\0]$/, { error: 'must be a relative path inside $HOME, e.g. notebooks/remote' })
          .refine((v) => !v.split('/').some((p) => p === '..' || p === '.' || p === ''), {
            error: 'must not contain "." , ".." or empty segments',
          })
          .default('notebooks/remote'),
        minUid: z.number({ error: 'must be a number' }).int().min(1, { error: 'must be at least 1 (never act for root)' }).default(1000),
        loginTimeoutMs: z
          .number({ error: 'must be a number of milliseconds' })
          .int()
          .min(100)
          .max(60000, { error: 'must be at most 60000: a login must not wait longer' })
          .default(3000),
        createHome: z.boolean().default(true),
      })
      .strict()
      .default({
        root: '/data/workspace',
        notebooks: 'notebooks',
        homeLink: 'notebooks/remote',
        minUid: 1000,
        loginTimeoutMs: 3000,
        createHome: true,
      }),
    health: z
      .object({
        listen: listen.default('127.0.0.1:8642'),
        allowNonLoopback: z.boolean().default(false),
        initializingGraceSec: z.number().int().min(0).default(1800),
        unhealthyOn: z
          .array(z.enum(checkIds, { error: `must list check ids: ${checkIds.join(', ')}` }))
          .default(['domain-trust', 'identity-lookup', 'sssd', 'share-mounted']),
        identityProbe: z.string().min(1).optional(),
        checks: z
          .partialRecord(
            z.enum(checkIds, { error: `must be a check id: ${checkIds.join(', ')}` }),
            z.object({ schedule: cronSchedule.optional(), enabled: z.boolean().default(true) }).strict(),
          )
          .default({}),
        metricsTextfile: absolutePath('the node-exporter textfile').optional(),
      })
      .strict()
      .superRefine((h, ctx) => {
        const host = h.listen.slice(0, h.listen.lastIndexOf(':')).replace(/^\[|\]$/g, '');
        const loopback = host === 'localhost' || host === '::1' || /^127\./.test(host);
        if (!loopback && !h.allowNonLoopback) {
          ctx.addIssue({
            code: 'custom',
            path: ['listen'],
            message: `"${host}" is not a loopback address: the health endpoint must stay on 127.0.0.1, or set health.allowNonLoopback: true deliberately`,
          });
        }
      })
      .default({
        listen: '127.0.0.1:8642',
        allowNonLoopback: false,
        initializingGraceSec: 1800,
        unhealthyOn: ['domain-trust', 'identity-lookup', 'sssd', 'share-mounted'],
        checks: {},
      }),
    repair: z
      .object({
        enabled: z.boolean().default(true),
        maxAttempts: z.number().int().min(1).default(3),
        windowSec: z.number().int().min(60).default(3600),
      })
      .strict()
      .default({ enabled: true, maxAttempts: 3, windowSec: 3600 }),
    scheduledEvents: z
      .object({
        enabled: z.boolean().default(true),
        pollSec: z.number().int().min(1).max(300).default(10),
      })
      .strict()
      .default({ enabled: true, pollSec: 10 }),
    logging: z
      .object({ level: z.enum(['error', 'warn', 'info', 'debug'], { error: 'must be error, warn, info or debug' }).default('info') })
      .strict()
      .default({ level: 'info' }),
  })
  .strict();

export type Config = z.output<typeof configSchema>;
export type SecretRef = z.output<typeof secretRef>;
export type StorageKeyRef = z.output<typeof storageKeyRef>;
export type ShareConfig = NonNullable<Config['share']>;
export type CheckId = (typeof checkIds)[number];

/** Keys whose values are secrets or secret references: never echoed in errors. */
export const secretKeys = new Set(['joinPassword', 'oneTimePassword', 'key', 'password']);
