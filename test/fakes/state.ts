import { randomBytes, randomUUID } from 'node:crypto';
import { seedSchema, handleSeed, type ParsedSeed, type ScheduledEvent, type Seed } from './types.js';
import type { z } from 'zod';

export interface Identity {
  clientId: string;
  objectId: string;
  resourceId?: string | undefined;
  systemAssigned: boolean;
  secrets: string[] | '*';
  storageAccounts: string[] | '*';
  scaleSets: string[] | '*';
}

export interface ScaleSet {
  name: string;
  subscriptionId?: string | undefined;
  resourceGroup?: string | undefined;
  vms: Array<{ instanceId: string; vmId: string }>;
}

export interface SecretVersion {
  version: string;
  value: string;
  contentType?: string | undefined;
  enabled: boolean;
  created: number;
}

export interface Share {
  quotaGiB: number;
  usageBytes: number;
  /** Real folder behind the share: directory operations and usage act on it. */
  root?: string | undefined;
  /** Directories (relative paths) of a share with no real folder. */
  dirs: Set<string>;
  lastModified: Date;
  etag: string;
}

export interface StorageAccount {
  name: string;
  subscriptionId?: string | undefined;
  resourceGroup?: string | undefined;
  keys: [string, string];
  shares: Map<string, Share>;
  /** Folder used for any share of this account not seeded explicitly. */
  root?: string | undefined;
}

export type Handle = Required<Omit<z.output<typeof handleSeed>, 'lastReconnectTime' | 'closeFails'>> & {
  lastReconnectTime?: string | undefined;
  closeFails: boolean;
};

export interface IssuedToken {
  clientId: string;
  objectId: string;
  resource: string;
  expiresOn: number;
}

export interface Approval {
  EventId: string;
  time: string;
}

const DEFAULT_QUOTA_GIB = 5120;

/** A storage key as Azure prints it: 64 random bytes, base64. */
export function newStorageKey(): string {
  return randomBytes(64).toString('base64');
}

export function etag(): string {
  return `"0x8D${randomBytes(6).toString('hex').toUpperCase()}"`;
}

function defaultCompute(): Record<string, unknown> {
  return {
    azEnvironment: 'AzurePublicCloud',
    location: 'westeurope',
    name: 'dsvm-0001',
    osProfile: { adminUsername: 'azureuser', computerName: 'dsvm-0001', disablePasswordAuthentication: 'true' },
    osType: 'Linux',
    provider: 'Microsoft.Compute',
    resourceGroupName: 'rg-dsvm',
    resourceId: '',
    subscriptionId: '00000000-0000-4000-8000-000000000001',
    tags: '',
    tagsList: [],
    vmId: randomUUID(),
    vmScaleSetName: '',
    vmSize: 'Standard_D4s_v5',
    zone: '',
  };
}

function deepMerge(into: Record<string, unknown>, from: Record<string, unknown>): Record<string, unknown> {
  for (const [key, value] of Object.entries(from)) {
    const old = into[key];
    if (value && typeof value === 'object' && !Array.isArray(value) && old && typeof old === 'object' && !Array.isArray(old)) {
      deepMerge(old as Record<string, unknown>, value as Record<string, unknown>);
    } else {
      into[key] = value;
    }
  }
  return into;
}

/**
 * Everything the fakes know. `reset()` returns to the start-up seed but keeps
 * issued tokens: MSAL caches tokens process-wide, so a client may present a
 * token obtained before the reset and must still be recognised.
 */
export class FakeState {
  tenantId: string = randomUUID();
  tokenLifetimeSeconds = 86_399;
  identities = new Map<string, Identity>();
  secrets = new Map<string, SecretVersion[]>();
  accounts = new Map<string, StorageAccount>();
  scaleSets = new Map<string, ScaleSet>();
  instance: { compute: Record<string, unknown>; network: unknown } = { compute: defaultCompute(), network: { interface: [] } };
  documentIncarnation = 0;
  events: ScheduledEvent[] = [];
  approvals: Approval[] = [];
  handles: Handle[] = [];
  forceCloseBatch = Number.POSITIVE_INFINITY;
  listHandlesPageSize = 5000;
  readonly tokens = new Map<string, IssuedToken>();

  constructor(
    private readonly startSeeds: Seed[],
    private readonly roots: Record<string, string>,
  ) {
    this.reset();
  }

  reset(): void {
    this.tenantId = randomUUID();
    this.tokenLifetimeSeconds = 86_399;
    this.identities.clear();
    this.secrets.clear();
    this.accounts.clear();
    this.scaleSets.clear();
    this.instance = { compute: defaultCompute(), network: { interface: [] } };
    this.documentIncarnation = 0;
    this.events = [];
    this.approvals = [];
    this.handles = [];
    this.forceCloseBatch = Number.POSITIVE_INFINITY;
    this.listHandlesPageSize = 5000;
    for (const [key, dir] of Object.entries(this.roots)) {
      const [accountName, shareName] = key.split('/');
      const account = this.account(accountName ?? key);
      if (shareName) this.share(account, shareName).root = dir;
      else account.root = dir;
    }
    for (const seed of this.startSeeds) this.seed(seed);
  }

  /** Validate and merge a seed (see README for the semantics of each key). */
  seed(input: Seed): void {
    const seed: ParsedSeed = seedSchema.parse(input);
    if (seed.tenantId) this.tenantId = seed.tenantId;
    if (seed.tokenLifetimeSeconds) this.tokenLifetimeSeconds = seed.tokenLifetimeSeconds;
    for (const id of seed.identities ?? []) {
      this.identities.set(id.clientId.toLowerCase(), {
        clientId: id.clientId,
        objectId: id.objectId ?? randomUUID(),
        resourceId: id.resourceId,
        systemAssigned: id.systemAssigned ?? false,
        secrets: id.secrets ?? [],
        storageAccounts: id.storageAccounts ?? [],
        scaleSets: id.scaleSets ?? [],
      });
    }
    for (const [name, secret] of Object.entries(seed.secrets ?? {})) this.putSecret(name, secret);
    for (const acct of seed.storageAccounts ?? []) {
      const account = this.account(acct.name);
      if (acct.subscriptionId) account.subscriptionId = acct.subscriptionId;
      if (acct.resourceGroup) account.resourceGroup = acct.resourceGroup;
      if (acct.keys?.[0]) account.keys = [acct.keys[0], acct.keys[1] ?? newStorageKey()];
      for (const [shareName, s] of Object.entries(acct.shares ?? {})) {
        const share = this.share(account, shareName);
        if (s.quotaGiB !== undefined) share.quotaGiB = s.quotaGiB;
        if (s.usageBytes !== undefined) share.usageBytes = s.usageBytes;
      }
    }
    for (const ss of seed.scaleSets ?? []) {
      this.scaleSets.set(ss.name.toLowerCase(), {
        name: ss.name,
        subscriptionId: ss.subscriptionId,
        resourceGroup: ss.resourceGroup,
        vms: ss.vms.map((v) => ({ ...v })),
      });
    }
    if (seed.vm?.compute) deepMerge(this.instance.compute, seed.vm.compute);
    if (seed.vm?.network !== undefined) this.instance.network = seed.vm.network;
    if (seed.scheduledEvents) {
      this.events = seed.scheduledEvents.map((e) => ({ ...e }));
      this.documentIncarnation += 1;
    }
    if (seed.handles) this.handles = seed.handles.map(toHandle);
    if (seed.files?.forceCloseBatch) this.forceCloseBatch = seed.files.forceCloseBatch;
    if (seed.files?.listHandlesPageSize) this.listHandlesPageSize = seed.files.listHandlesPageSize;
  }

  private putSecret(name: string, secret: NonNullable<ParsedSeed['secrets']>[string]): void {
    const s = typeof secret === 'string' ? { value: secret } : secret;
    const versions = this.secrets.get(name) ?? [];
    const latest = versions.at(-1);
    if (!s.version && latest && latest.value === s.value && latest.contentType === s.contentType && latest.enabled === (s.enabled ?? true))
      return;
    const version = s.version ?? randomBytes(16).toString('hex');
    const next = versions.filter((v) => v.version !== version);
    next.push({ version, value: s.value, contentType: s.contentType, enabled: s.enabled ?? true, created: Math.floor(Date.now() / 1000) });
    this.secrets.set(name, next);
  }

  /** The account, created with fresh keys when unknown. */
  account(name: string): StorageAccount {
    let account = this.accounts.get(name);
    if (!account) {
      account = { name, keys: [newStorageKey(), newStorageKey()], shares: new Map() };
      this.accounts.set(name, account);
    }
    return account;
  }

  share(account: StorageAccount, name: string): Share {
    let share = account.shares.get(name);
    if (!share) {
      share = { quotaGiB: DEFAULT_QUOTA_GIB, usageBytes: 0, root: account.root, dirs: new Set(), lastModified: new Date(), etag: etag() };
      account.shares.set(name, share);
    }
    return share;
  }

  /** A share the Files REST fake serves: seeded, or any name when the account has a root folder. */
  findShare(accountName: string, shareName: string): Share | undefined {
    const account = this.accounts.get(accountName);
    if (!account) return undefined;
    const share = account.shares.get(shareName);
    if (share) return share;
    return account.root ? this.share(account, shareName) : undefined;
  }

  /** True when no identities were seeded: every token may do everything. */
  get permissive(): boolean {
    return this.identities.size === 0;
  }

  identityFor(clientId: string): Identity | undefined {
    return this.identities.get(clientId.toLowerCase());
  }

  mayReadSecret(token: IssuedToken, name: string): boolean {
    if (this.permissive) return true;
    const grants = this.identityFor(token.clientId)?.secrets ?? [];
    return grants === '*' || grants.includes(name);
  }

  mayListKeys(token: IssuedToken, account: string): boolean {
    if (this.permissive) return true;
    const grants = this.identityFor(token.clientId)?.storageAccounts ?? [];
    return grants === '*' || grants.includes(account);
  }

  mayListScaleSet(token: IssuedToken, name: string): boolean {
    if (this.permissive) return true;
    const grants = this.identityFor(token.clientId)?.scaleSets ?? [];
    return grants === '*' || grants.some((g) => g.toLowerCase() === name.toLowerCase());
  }

  /** Non-secret view for the control API and assertions. */
  summary(): Record<string, unknown> {
    return {
      tenantId: this.tenantId,
      identities: [...this.identities.values()].map(({ clientId, systemAssigned, secrets, storageAccounts }) => ({
        clientId,
        systemAssigned,
        secrets,
        storageAccounts,
      })),
      secrets: [...this.secrets.entries()].map(([name, versions]) => ({ name, versions: versions.map((v) => v.version) })),
      storageAccounts: [...this.accounts.values()].map((a) => ({
        name: a.name,
        root: a.root,
        shares: [...a.shares.entries()].map(([name, s]) => ({ name, quotaGiB: s.quotaGiB, root: s.root, dirs: [...s.dirs] })),
      })),
      scaleSets: [...this.scaleSets.values()],
      compute: this.instance.compute,
      documentIncarnation: this.documentIncarnation,
      scheduledEvents: this.events,
      approvals: this.approvals,
      handles: this.handles,
      tokensIssued: this.tokens.size,
    };
  }
}

function toHandle(h: z.output<typeof handleSeed>): Handle {
  return {
    account: h.account,
    share: h.share,
    path: h.path.replace(/^\/+|\/+$/g, ''),
    handleId: h.handleId ?? randomBytes(8).readBigUInt64BE().toString(),
    fileId: h.fileId ?? randomBytes(8).readBigUInt64BE().toString(),
    parentId: h.parentId ?? '0',
    sessionId: h.sessionId ?? randomBytes(8).readBigUInt64BE().toString(),
    clientIp: h.clientIp ?? '10.77.0.10:49152',
    clientName: h.clientName ?? 'DSVM-LAB-CLIENT',
    openTime: h.openTime ?? new Date().toUTCString(),
    lastReconnectTime: h.lastReconnectTime,
    closeFails: h.closeFails ?? false,
  };
}
