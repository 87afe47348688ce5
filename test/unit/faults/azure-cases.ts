import type { FailSpec } from '../../fakes/index.js';

/**
 * Bad answers from the Azure endpoints the agent talks to, one row each:
 * which fake route answers badly and how (a FailSpec of test/fakes), which
 * agent call meets it, and what the agent must make of it. The rows are the
 * table of RELIABILITY.md ("Bad answers from Azure"); azure-answers.test.ts
 * runs them and checks that the page shows exactly these rows.
 */

export type Service = 'IMDS' | 'Scheduled Events' | 'Key Vault' | 'ARM' | 'Files REST';

/** The agent calls the driver (azure-driver.ts) knows how to make. */
export type AgentCall =
  | 'imds.compute'
  | 'events.poll'
  | 'events.approve'
  | 'keyVault.secret'
  | 'arm.listKeys'
  | 'arm.scaleSetVms'
  | 'files.usage'
  | 'files.folder'
  | 'files.closeHandles';

export interface AzureFaultCase {
  id: string;
  service: Service;
  call: AgentCall;
  /** The fake route that answers badly. */
  route: string;
  fault: FailSpec;
  /** The bad answer, in words (the page's column). */
  bad: string;
  /** How the call ends: an error of that kind, or `reported` (the call goes on and counts the failure). */
  outcome: 'transient' | 'permanent' | 'reported';
  reason?: string;
  /** The message names the service or route and what was wrong. */
  message: RegExp;
  /** The fix the error carries. */
  fix?: RegExp;
  /** What the agent does then (the page's column). */
  does: string;
}

export const MB = 1024 * 1024;
/** The huge answer every service gets once. */
export const HUGE = 50 * MB;
/** The test's bounds: one try of an SDK call (and the IMDS client's timeout), and the body cap of SDK answers. */
export const TRY_TIMEOUT_MS = 1_500;
export const IMDS_TIMEOUT_MS = 1_000;
export const SLOW_MS = 5_000;

const html = { contentType: 'text/html', body: '<html><body>Proxy login required</body></html>' };
const imdsFix = /nothing .*answers for 169\.254\.169\.254/;
const retried = 'transient: retried with backoff (provision exits 3; the daemon tries again)';
const polled = 'logged once; the next poll asks again; no event handled';
const notApproved = 'the clean-up steps are journaled, the approval is not; the next poll approves once';

export const AZURE_FAULT_CASES: readonly AzureFaultCase[] = [
  // IMDS instance metadata (vmId, names: first boot, scale-in, sweep)
  ...(
    [
      ['500', { status: 500 }, 'HTTP 500', /IMDS \/metadata\/instance answered 500/],
      ['429', { status: 429, headers: { 'retry-after': '1' } }, 'HTTP 429 with Retry-After', /answered 429/],
      ['malformed', { malformed: true }, 'truncated JSON', /\/metadata\/instance answered something that is not JSON/],
      ['html', html, '200 text/html (a proxy page)', /not JSON \(text\/html\)/],
      ['null', { body: null }, '200 `null` (JSON, not an object)', /\/metadata\/instance answered JSON that is not an object/],
      ['huge', { bodyBytes: HUGE }, '50 MB body', /\/metadata\/instance is larger than 1 MiB: stopped reading/],
    ] as const
  ).map(([tag, fault, bad, message]): AzureFaultCase => ({
    id: `imds-instance-${tag}`,
    service: 'IMDS',
    call: 'imds.compute',
    route: 'imds.instance',
    fault,
    bad,
    outcome: 'transient',
    reason: 'imds-error',
    message,
    fix: imdsFix,
    does: retried,
  })),
  {
    id: 'imds-instance-slow',
    service: 'IMDS',
    call: 'imds.compute',
    route: 'imds.instance',
    fault: { delayMs: SLOW_MS },
    bad: `no answer for ${SLOW_MS / 1000} s`,
    outcome: 'transient',
    reason: 'imds-unreachable',
    message: new RegExp(`/metadata/instance at .* unreachable: no answer within ${IMDS_TIMEOUT_MS} ms`),
    fix: /IMDS answers only inside Azure/,
    does: `${retried}; gives up after the IMDS timeout (3 s in the agent)`,
  },
  {
    id: 'imds-instance-drop',
    service: 'IMDS',
    call: 'imds.compute',
    route: 'imds.instance',
    fault: { drop: true },
    bad: 'connection closed without an answer',
    outcome: 'transient',
    reason: 'imds-unreachable',
    message: /\/metadata\/instance at .* unreachable/,
    fix: /IMDS answers only inside Azure/,
    does: retried,
  },
  // Scheduled Events: the document
  ...(
    [
      ['500', { status: 500 }, 'HTTP 500', /\/metadata\/scheduledevents answered 500/],
      ['malformed', { malformed: true }, 'truncated JSON', /scheduledevents answered something that is not JSON/],
      ['html', html, '200 text/html', /scheduledevents answered something that is not JSON \(text\/html\)/],
      [
        'no-list',
        { body: { DocumentIncarnation: 3, Events: 'none' } },
        '200 JSON whose `Events` is not a list',
        /scheduledevents answered JSON without an "Events" list/,
      ],
      ['huge', { bodyBytes: HUGE }, '50 MB body', /\/metadata\/scheduledevents is larger than 1 MiB/],
    ] as const
  ).map(([tag, fault, bad, message]): AzureFaultCase => ({
    id: `events-${tag}`,
    service: 'Scheduled Events',
    call: 'events.poll',
    route: 'imds.scheduledEvents',
    fault,
    bad,
    outcome: 'transient',
    reason: 'imds-error',
    message,
    fix: imdsFix,
    does: polled,
  })),
  {
    id: 'events-slow',
    service: 'Scheduled Events',
    call: 'events.poll',
    route: 'imds.scheduledEvents',
    fault: { delayMs: SLOW_MS },
    bad: `no answer for ${SLOW_MS / 1000} s`,
    outcome: 'transient',
    reason: 'imds-unreachable',
    message: new RegExp(`/metadata/scheduledevents at .* unreachable: no answer within ${IMDS_TIMEOUT_MS} ms`),
    fix: /IMDS answers only inside Azure/,
    does: `${polled}; the poll gives up after the IMDS timeout`,
  },
  // Scheduled Events: the approval (times: the watcher's POST and the driver's own)
  ...(
    [
      ['500', { status: 500, times: 2 }, 'HTTP 500', /IMDS \/metadata\/scheduledevents answered 500/, 'imds-error'],
      [
        '400',
        { status: 400, body: { error: 'Bad request. Request body is not valid.' }, times: 2 },
        'HTTP 400',
        /scheduledevents answered 400/,
        'imds-error',
      ],
      ['drop', { drop: true, times: 2 }, 'connection closed without an answer', /scheduledevents at .* unreachable/, 'imds-unreachable'],
      [
        'slow',
        { delayMs: SLOW_MS, times: 2 },
        `no answer for ${SLOW_MS / 1000} s`,
        new RegExp(`scheduledevents at .* unreachable: no answer within ${IMDS_TIMEOUT_MS} ms`),
        'imds-unreachable',
      ],
      ['huge', { bodyBytes: HUGE, status: 200, times: 2 }, '200 with a 50 MB body', /scheduledevents is larger than 1 MiB/, 'imds-error'],
    ] as const
  ).map(([tag, fault, bad, message, reason]): AzureFaultCase => ({
    id: `approve-${tag}`,
    service: 'Scheduled Events',
    call: 'events.approve',
    route: 'imds.scheduledEventsApprove',
    fault,
    bad,
    outcome: 'transient',
    reason,
    message,
    does: notApproved,
  })),
  // Key Vault (the join password, a storage key), through the managed identity
  ...(
    [
      [
        '500',
        { status: 500 },
        'HTTP 500 (after the SDK retried twice)',
        'transient',
        'keyvault-unreachable',
        /cannot read Key Vault secret "dsvm-join"/,
      ],
      [
        '429',
        { status: 429, headers: { 'retry-after': '1' } },
        'HTTP 429 with Retry-After',
        'transient',
        'keyvault-unreachable',
        /cannot read Key Vault/,
      ],
      [
        'malformed',
        { malformed: true },
        '200, truncated JSON',
        'transient',
        'keyvault-bad-answer',
        /Key Vault secret "dsvm-join" .*is not a Key Vault answer/,
      ],
      ['html', html, '200 text/html (a proxy page)', 'transient', 'keyvault-bad-answer', /not a Key Vault answer/],
      ['huge', { bodyBytes: HUGE }, '50 MB body', 'transient', 'keyvault-bad-answer', /is larger than 4 MiB: stopped reading/],
      [
        'slow',
        { delayMs: SLOW_MS },
        `no answer for ${SLOW_MS / 1000} s`,
        'transient',
        'keyvault-unreachable',
        new RegExp(`no complete answer from https://.*/secrets/dsvm-join/? within ${TRY_TIMEOUT_MS} ms`),
      ],
      [
        'stall',
        { stallMs: SLOW_MS, body: { value: 'stalled', id: 'https://dsvm.vault.localhost/secrets/dsvm-join/0123abcd' } },
        `headers, then the body stalls ${SLOW_MS / 1000} s`,
        'transient',
        'keyvault-unreachable',
        new RegExp(`no complete answer .* within ${TRY_TIMEOUT_MS} ms`),
      ],
      ['403', { status: 403 }, 'HTTP 403', 'permanent', 'keyvault-forbidden', /Key Vault secret "dsvm-join" .*access denied \(403\)/],
      ['404', { status: 404 }, 'HTTP 404', 'permanent', 'keyvault-not-found', /Key Vault secret "dsvm-join" .*not found \(404\)/],
    ] as const
  ).map(([tag, fault, bad, outcome, reason, message]): AzureFaultCase => ({
    id: `keyvault-${tag}`,
    service: 'Key Vault',
    call: 'keyVault.secret',
    route: 'keyVault.getSecret',
    fault,
    bad,
    outcome,
    reason,
    message: new RegExp(`domain\\.joinPassword: .*${message.source}`),
    fix: outcome === 'permanent' ? /grant|create the secret/ : /managed identity|proxy|reach the vault/,
    does: outcome === 'permanent' ? 'permanent: provision stops with the reason and the fix' : retried,
  })),
  // The managed identity's token (IMDS), met on the way to Key Vault
  ...(
    [
      ['500', { status: 500 }, 'HTTP 500', /cannot read Key Vault secret "dsvm-join"/],
      ['malformed', { malformed: true }, '200, truncated JSON', /cannot read Key Vault secret "dsvm-join"/],
      ['huge', { bodyBytes: HUGE }, '50 MB body', /cannot read Key Vault secret "dsvm-join".*ManagedIdentityCredential/],
      ['slow', { delayMs: SLOW_MS }, `no answer for ${SLOW_MS / 1000} s`, /cannot read Key Vault secret "dsvm-join"/],
    ] as const
  ).map(([tag, fault, bad, message]): AzureFaultCase => ({
    id: `token-${tag}`,
    service: 'IMDS',
    call: 'keyVault.secret',
    route: 'imds.token',
    fault,
    bad,
    outcome: 'transient',
    reason: 'keyvault-unreachable',
    message,
    fix: /managed identity/,
    does: retried,
  })),
  // ARM listKeys (share.key.armListKeys)
  ...(
    [
      [
        '500',
        { status: 500 },
        'HTTP 500 (after the SDK retried twice)',
        'transient',
        'share-listkeys-unreachable',
        /cannot list the keys of storage account "contosofiles"/,
      ],
      [
        'malformed',
        { malformed: true },
        '200, truncated JSON',
        'transient',
        'share-listkeys-bad-answer',
        /listKeys on storage account "contosofiles" .*is not an ARM key list/,
      ],
      [
        'html',
        html,
        '200 text/html',
        'transient',
        'share-listkeys-bad-answer',
        /listKeys on storage account "contosofiles" .*is not an ARM key list/,
      ],
      [
        'no-keys',
        { body: { keys: [] } },
        '200 `{"keys":[]}`',
        'permanent',
        'share-key-missing',
        /listKeys for storage account "contosofiles" .*returned no key1/,
      ],
      ['huge', { bodyBytes: HUGE }, '50 MB body', 'transient', 'share-listkeys-unreachable', /larger than 4 MiB: stopped reading/],
      [
        'slow',
        { delayMs: SLOW_MS },
        `no answer for ${SLOW_MS / 1000} s`,
        'transient',
        'share-listkeys-unreachable',
        new RegExp(`listKeys within ${TRY_TIMEOUT_MS} ms`),
      ],
      [
        '403',
        { status: 403 },
        'HTTP 403',
        'permanent',
        'share-listkeys-forbidden',
        /listKeys on storage account "contosofiles" .*refused \(403/,
      ],
    ] as const
  ).map(([tag, fault, bad, outcome, reason, message]): AzureFaultCase => ({
    id: `arm-listkeys-${tag}`,
    service: 'ARM',
    call: 'arm.listKeys',
    route: 'arm.listKeys',
    fault,
    bad,
    outcome,
    reason,
    message: new RegExp(`share\\.key: .*${message.source}`),
    fix: outcome === 'permanent' ? /grant|allowSharedKeyAccess/ : /managed identity|proxy/,
    does: outcome === 'permanent' ? 'permanent: provision stops with the reason and the fix' : retried,
  })),
  // ARM: the scale set's VMs (dsvm-agent sweep)
  ...(
    [
      ['500', { status: 500 }, 'HTTP 500', /ARM answered 500 listing the VMs of scale set "dsvmpool"/],
      ['malformed', { malformed: true }, '200, truncated JSON', /ARM answered 200 .* not a JSON object: nothing deleted/],
      ['html', html, '200 text/html', /ARM answered 200 .* not a JSON object: nothing deleted/],
      ['no-list', { body: { items: [] } }, '200 JSON without a `value` list', /not with a VM list .*: nothing deleted/],
      ['huge', { bodyBytes: HUGE }, '50 MB body', /larger than 4 MiB: stopped reading it: nothing deleted/],
      [
        'slow',
        { delayMs: SLOW_MS },
        `no answer for ${SLOW_MS / 1000} s`,
        new RegExp(`no complete answer within ${TRY_TIMEOUT_MS} ms: nothing deleted`),
      ],
    ] as const
  ).map(([tag, fault, bad, message]): AzureFaultCase => ({
    id: `arm-vms-${tag}`,
    service: 'ARM',
    call: 'arm.scaleSetVms',
    route: 'arm.listScaleSetVms',
    fault,
    bad,
    outcome: 'transient',
    message: new RegExp(`sweep: .*${message.source}`),
    fix: /retry|managementEndpoint/,
    does: 'the sweep stops before deleting anything; it runs again later',
  })),
  // Files REST: usage and quota (health check, metrics)
  ...(
    [
      ['503', { status: 503 }, 'HTTP 503 ServerBusy', 'share-rest-unreachable', /reading usage and quota: .* unreachable or busy/],
      [
        'malformed',
        { malformed: true },
        '200, truncated XML',
        'share-rest-bad-answer',
        /reading usage and quota: .*is not a Files REST answer/,
      ],
      [
        'json',
        { body: { message: 'ok' } },
        '200 application/json, not the XML stats',
        'share-rest-bad-answer',
        /reading usage and quota: .*is not a Files REST answer/,
      ],
      ['huge', { bodyBytes: HUGE }, '50 MB body', 'share-rest-bad-answer', /reading usage and quota: .*larger than 4 MiB/],
      [
        'slow',
        { delayMs: SLOW_MS },
        `no answer for ${SLOW_MS / 1000} s`,
        'share-rest-unreachable',
        /reading usage and quota: .* unreachable or busy/,
      ],
    ] as const
  ).map(([tag, fault, bad, reason, message]): AzureFaultCase => ({
    id: `files-stats-${tag}`,
    service: 'Files REST',
    call: 'files.usage',
    route: 'files.shareStats',
    fault,
    bad,
    outcome: 'transient',
    reason,
    message: new RegExp(`share: ${message.source}`),
    fix: /outbound HTTPS/,
    does: 'the usage check reports the error; the next check asks again',
  })),
  {
    id: 'files-mkdir-500',
    service: 'Files REST',
    call: 'files.folder',
    route: 'files.createDirectory',
    fault: { status: 500 },
    bad: 'HTTP 500 on create directory',
    outcome: 'transient',
    reason: 'share-rest-unreachable',
    message: /share: creating folder users: .* unreachable or busy/,
    fix: /outbound HTTPS/,
    does: 'the folder is made at the next try (creation is idempotent)',
  },
  ...(
    [
      ['malformed', { malformed: true }, '200, truncated XML', /listing open handles: .*is not a Files REST answer/],
      ['huge', { bodyBytes: HUGE }, '50 MB body', /listing open handles: .*larger than 4 MiB/],
    ] as const
  ).map(([tag, fault, bad, message]): AzureFaultCase => ({
    id: `files-listhandles-${tag}`,
    service: 'Files REST',
    call: 'files.closeHandles',
    route: 'files.listHandles',
    fault,
    bad,
    outcome: 'transient',
    reason: 'share-rest-bad-answer',
    message: new RegExp(`share: ${message.source}`),
    fix: /outbound HTTPS/,
    does: 'no handle is closed (none is guessed at); the scale-in step is journaled failed and the rest goes on',
  })),
  {
    id: 'files-forceclose-500',
    service: 'Files REST',
    call: 'files.closeHandles',
    route: 'files.forceCloseHandles',
    fault: { status: 500 },
    bad: 'HTTP 500 on force-close',
    outcome: 'reported',
    message: /share: closing handle .* unreachable or busy/,
    does: "counted as failed and logged; other VMs' handles stay open; the unmount goes on",
  },
];
