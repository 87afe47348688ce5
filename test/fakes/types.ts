import { z } from 'zod';

/** The four loopback fakes; `control` is the driver API, not a fake. */
export const FAKE_NAMES = ['imds', 'keyVault', 'arm', 'files'] as const;
export type FakeName = (typeof FAKE_NAMES)[number];

/**
 * Route names used in request records and failure rules. A rule may also name
 * `<fake>.*` or `*`. Requests that match no route are recorded as
 * `<fake>.unknown` and can be failed by that name too.
 */
export const ROUTES = [
  'imds.token',
  'imds.instance',
  'imds.scheduledEvents',
  'imds.scheduledEventsApprove',
  'keyVault.getSecret',
  'arm.listKeys',
  'arm.listScaleSetVms',
  'files.createDirectory',
  'files.directoryProperties',
  'files.shareProperties',
  'files.shareStats',
  'files.listHandles',
  'files.forceCloseHandles',
] as const;
export type RouteName = (typeof ROUTES)[number];

const grants = z.union([z.literal('*'), z.array(z.string())]);

export const identitySeed = z.object({
  clientId: z.string().min(1),
  objectId: z.string().optional(),
  resourceId: z.string().optional(),
  /** The VM's system-assigned identity: used when a token request names no identity. */
  systemAssigned: z.boolean().optional(),
  /** Secret names this identity may read ("*" = all). Default: none. */
  secrets: grants.optional(),
  /** Storage account names whose keys this identity may list ("*" = all). Default: none. */
  storageAccounts: grants.optional(),
  /** Scale set names whose VMs this identity may list (Reader on the scale set; "*" = all). Default: none. */
  scaleSets: grants.optional(),
});

/** A scale set ARM lists the VMs of (GET .../virtualMachineScaleSets/{name}/virtualMachines). */
export const scaleSetSeed = z.object({
  name: z.string().min(1),
  subscriptionId: z.string().optional(),
  resourceGroup: z.string().optional(),
  vms: z.array(z.object({ instanceId: z.string().min(1), vmId: z.string().min(1) })),
});

const secretSeed = z.union([
  z.string(),
  z.object({
    value: z.string(),
    version: z
      .string()
      .regex(/^[0-9a-zA-Z]{1,64}$/)
      .optional(),
    contentType: z.string().optional(),
    enabled: z.boolean().optional(),
  }),
]);

const shareSeed = z.object({
  quotaGiB: z.number().int().positive().optional(),
  /** Reported usage when the share has no real folder behind it. */
  usageBytes: z.number().int().nonnegative().optional(),
});

export const storageAccountSeed = z.object({
  name: z.string().regex(/^[a-z0-9]{3,24}$/),
  /** When set, ARM requests must name this subscription / resource group. */
  subscriptionId: z.string().optional(),
  resourceGroup: z.string().optional(),
  /** key1, key2 (base64). Missing keys are generated. */
  keys: z.array(z.string().min(1)).max(2).optional(),
  shares: z.record(z.string(), shareSeed).optional(),
});

export const scheduledEventSeed = z.object({
  EventId: z.string().min(1),
  EventType: z.enum(['Freeze', 'Reboot', 'Redeploy', 'Preempt', 'Terminate']),
  ResourceType: z.string().default('VirtualMachine'),
  Resources: z.array(z.string()),
  EventStatus: z.enum(['Scheduled', 'Started']).default('Scheduled'),
  NotBefore: z.string().default(''),
  Description: z.string().default(''),
  EventSource: z.enum(['Platform', 'User']).default('Platform'),
  DurationInSeconds: z.number().int().default(-1),
});
export type ScheduledEvent = z.output<typeof scheduledEventSeed>;

export const handleSeed = z.object({
  account: z.string(),
  share: z.string(),
  /** Path relative to the share root, "/"-separated, no leading slash ("" = root). */
  path: z.string(),
  handleId: z.string().optional(),
  fileId: z.string().optional(),
  parentId: z.string().optional(),
  sessionId: z.string().optional(),
  clientIp: z.string().optional(),
  clientName: z.string().optional(),
  openTime: z.string().optional(),
  lastReconnectTime: z.string().optional(),
  /** Force-close reports this handle as failed and keeps it open. */
  closeFails: z.boolean().optional(),
});

export const seedSchema = z
  .object({
    tenantId: z.string().optional(),
    tokenLifetimeSeconds: z.number().int().positive().optional(),
    /** Upserted by clientId. No identities at all = every token may do everything. */
    identities: z.array(identitySeed).optional(),
    /** Upserted by name; a new value becomes the latest version. */
    secrets: z.record(z.string().regex(/^[0-9a-zA-Z-]{1,127}$/), secretSeed).optional(),
    /** Upserted by name; shares are merged, given keys replace the old ones. */
    storageAccounts: z.array(storageAccountSeed).optional(),
    /** Upserted by name: the VM list replaces the old one (a VM that "vanished" is one left out). */
    scaleSets: z.array(scaleSetSeed).optional(),
    /** Deep-merged into the instance metadata document. */
    vm: z.object({ compute: z.record(z.string(), z.unknown()).optional(), network: z.unknown().optional() }).optional(),
    /** Replaces the event list and bumps DocumentIncarnation. */
    scheduledEvents: z.array(scheduledEventSeed).optional(),
    /** Replaces all open handles. */
    handles: z.array(handleSeed).optional(),
    files: z
      .object({
        /** Max handles closed per force-close call; more left → `x-ms-marker`. */
        forceCloseBatch: z.number().int().positive().optional(),
        /** Default page size of list-handles when the client sends no maxresults. */
        listHandlesPageSize: z.number().int().positive().optional(),
      })
      .optional(),
  })
  .strict();
export type Seed = z.input<typeof seedSchema>;
export type ParsedSeed = z.output<typeof seedSchema>;

export const failSpecSchema = z
  .object({
    /** Respond with this status instead of the real answer. */
    status: z.number().int().min(100).max(599).optional(),
    /** Wait before answering (or before failing). */
    delayMs: z.number().int().nonnegative().max(600_000).optional(),
    /** Body for `status`: a string is sent as is, anything else as JSON. */
    body: z.unknown().optional(),
    /** Extra response headers, e.g. Retry-After. */
    headers: z.record(z.string(), z.string()).optional(),
    /** Content type of the answer instead of the fake's own (answers 200 unless `status` is given). */
    contentType: z.string().min(1).optional(),
    /**
     * Answer with a body of this many bytes (at most 200 MB): the given `body`
     * (or the fake's truncated one) padded with "x", streamed chunk by chunk.
     */
    bodyBytes: z
      .number()
      .int()
      .positive()
      .max(200 * 1024 * 1024)
      .optional(),
    /** Send the status, headers and first 16 bytes of the body at once, then wait this long before the rest. */
    stallMs: z.number().int().nonnegative().max(600_000).optional(),
    /** Send a truncated body of the right content type (status defaults to 200). */
    malformed: z.boolean().optional(),
    /** Destroy the connection without an answer. */
    drop: z.boolean().optional(),
    /** Apply to the next N matching requests, then behave normally. Default: until reset. */
    times: z.number().int().positive().optional(),
  })
  .strict();
export type FailSpec = z.input<typeof failSpecSchema>;

export interface RecordedRequest {
  seq: number;
  time: string;
  fake: FakeName;
  route: string;
  method: string;
  path: string;
  query: Record<string, string>;
  /** Selected, non-secret headers (lower-case names). */
  headers: Record<string, string>;
  /** Authorization scheme only ("Bearer", "SharedKey", "none"); never the value. */
  auth: string;
  /** The identity behind a Bearer token this fake issued, if any. */
  clientId?: string;
  /** Non-secret request body facts (e.g. approved EventIds). */
  body?: unknown;
  status?: number;
  injected?: boolean;
  /** Body bytes an injected answer had written when the connection ended (how much a client took of a huge body). */
  sentBytes?: number;
}

export interface FakeUrls {
  imds: string;
  keyVault: string;
  arm: string;
  files: string;
  control: string;
}
