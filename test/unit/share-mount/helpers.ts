import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loopbackLookup, startFakes, type Fakes, type Seed } from '../../fakes/index.js';
import { fileURLToPath } from 'node:url';
import type { FakeCommand } from '../../helpers/fake-runner.js';
import { makeTestContext, writeSecretFile, type TestContext } from '../../helpers/context.js';
import type { Paths } from '../../../src/agent/paths.js';
import type { ServiceManager } from '../../../src/agent/service-manager.js';
import { createShareMountTask, type ShareMountDeps } from '../../../src/tasks/share-mount/index.js';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/share-mount');

/** A captured fixture with its @ROOT@ placeholder set to this test's root. */
export async function fixture(name: string, root: string): Promise<string> {
  return (await readFile(path.join(fixtures, name), 'utf8')).split('@ROOT@').join(root);
}

/** A base64 storage key that does not look like any other test string. */
export const KEY = 'S3cr3tStorageKey+ab/CdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH==';
export const WRONG_KEY = 'WrongKeyWrongKey+ab/CdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH==';
export const SUBSCRIPTION = 'b8635b18-1560-4250-926e-6ff110446a18';

/**
 * The Azure fakes with the test storage account: "contosofiles" (key KEY, in
 * SUBSCRIPTION / rg-dsvm) and its 100 GiB share "workspace" on a fresh temp
 * folder. `seed` adds to it (identities, ...).
 */
export async function startShareFakes(seed: Seed = {}): Promise<{ fakes: Fakes; shareDir: string }> {
  const shareDir = await mkdtemp(path.join(tmpdir(), 'share-fakes-'));
  const fakes = await startFakes({
    filesRoots: { 'contosofiles/workspace': shareDir },
    seed: {
      storageAccounts: [
        {
          name: 'contosofiles',
          subscriptionId: SUBSCRIPTION,
          resourceGroup: 'rg-dsvm',
          keys: [KEY],
          shares: { workspace: { quotaGiB: 100 } },
        },
      ],
      ...seed,
    },
  });
  return { fakes, shareDir };
}

/**
 * A little mount table the fake findmnt and umount/mount act on, so a task
 * run sees its own mounts: `state` is the fixture findmnt prints.
 */
export class FakeMounts {
  state:
    | 'findmnt-not-mounted.json'
    | 'findmnt-cifs.json'
    | 'findmnt-tmpfs.json'
    | 'findmnt-cifs-other.json'
    | 'findmnt-autofs.json'
    | 'findmnt-nfs.json' = 'findmnt-not-mounted.json';
  mountResult: { exitCode: number; stderr: string } = { exitCode: 0, stderr: '' };
  dnsResult: { exitCode: number; stdout?: string } = {
    exitCode: 0,
    stdout: '10.77.0.3       STREAM contosofiles.file.contoso.test\n10.77.0.3       DGRAM  \n',
  };
  /** Results for the next mounts, used up first; then mountResult. */
  mountQueue: Array<{ exitCode: number; stderr: string }> = [];
  /** Called on every umount, e.g. to see what else had happened by then. */
  onUmount: () => void = () => undefined;
  /** Called on every mount before it answers (e.g. to read the credentials file it would use). */
  onMount: () => void | Promise<void> = () => undefined;
  /** The fixtures name the public host; the task tests use the lab's suffix. */
  constructor(
    private readonly root: string,
    private readonly host = 'contosofiles.file.contoso.test',
  ) {}

  private async table(): Promise<string> {
    return (await fixture(this.state, this.root)).split('contosofiles.file.core.windows.net').join(this.host);
  }

  commands(): FakeCommand[] {
    return [
      { file: 'findmnt', result: async () => ({ stdout: await this.table() }) },
      {
        file: 'mount',
        result: async () => {
          await this.onMount();
          const r = this.mountQueue.shift() ?? this.mountResult;
          if (r.exitCode === 0) this.state = 'findmnt-cifs.json';
          return r;
        },
      },
      {
        file: 'umount',
        result: () => {
          this.onUmount();
          this.state = 'findmnt-not-mounted.json';
          return {};
        },
      },
      { file: 'getent', args: (a) => a[0] === 'ahosts', result: () => this.dnsResult },
    ];
  }

  /** /proc/self/mountinfo under the root, for isMounted/probeShare. */
  async writeMountinfo(paths: Paths, name: string): Promise<void> {
    await mkdir(path.dirname(paths.procMounts), { recursive: true });
    await writeFile(paths.procMounts, (await fixture(name, paths.root)).split('contosofiles.file.core.windows.net').join(this.host));
  }
}

/** The mount helper mount(8) would look for, inside the test root. */
export async function installMountHelper(paths: Paths): Promise<void> {
  await mkdir(path.dirname(paths.mountCifsHelper), { recursive: true });
  await writeFile(paths.mountCifsHelper, '', { mode: 0o755 });
}

/** Match an AgentError by its fields (tap wants a name, message or code in an error pattern). */
export const agentError = (m: Record<string, unknown>): { name: string } & Record<string, unknown> => ({ name: 'AgentError', ...m });

/** A second valid key of the test account, for rotations. */
export const ROTATED_KEY = 'RotatedKey0123456789+/abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ab==';

export interface TaskSetup extends TestContext {
  mounts: FakeMounts;
  task: ReturnType<typeof createShareMountTask>;
  /** What the task gets for its https calls. */
  http: NonNullable<ShareMountDeps['http']>;
}

/**
 * A share-mount task in a fresh temp root against the fakes: account
 * contosofiles, key from a file (KEY unless `key`), the fake mount table,
 * mount.cifs installed unless `helper: false`.
 */
export async function setupTask(
  fakes: Fakes,
  opts: {
    share?: Record<string, unknown>;
    config?: Record<string, unknown>;
    key?: string;
    tcp?: ShareMountDeps['tcp'];
    helper?: boolean;
    http?: NonNullable<ShareMountDeps['http']>;
  } = {},
): Promise<TaskSetup> {
  const root = await mkdtemp(path.join(tmpdir(), 'share-task-'));
  const mounts = new FakeMounts(root);
  const tc = await makeTestContext({
    root,
    commands: mounts.commands(),
    config: {
      azure: { imdsEndpoint: fakes.urls.imds, managementEndpoint: fakes.urls.arm },
      ...opts.config,
      share: {
        account: 'contosofiles',
        name: 'workspace',
        endpointSuffix: 'contoso.test',
        filesEndpoint: `${fakes.urls.files}/contosofiles`,
        key: { file: '/etc/dsvm-agent/storage-key' },
        gid: 1999,
        dirMode: '0770',
        fileMode: '0660',
        ...opts.share,
      },
    },
  });
  await writeSecretFile(tc.paths, '/etc/dsvm-agent/storage-key', `${opts.key ?? KEY}\n`);
  if (opts.helper !== false) await installMountHelper(tc.paths);
  const http = opts.http ?? { agent: fakes.httpsAgent() };
  const task = createShareMountTask({
    tcp: opts.tcp ?? (async () => ({ ok: true as const })),
    kernelRelease: '6.1.0-18-cloud-amd64',
    http,
  });
  return { ...tc, mounts, task, http };
}

/** The test's service manager as on a real VM (systemd), recording into the same list. */
export function systemdServices(
  s: TestContext,
  hooks: { stop?: (unit: string) => void; start?: (unit: string) => void } = {},
): ServiceManager {
  return {
    ...s.services,
    kind: 'systemd',
    start: async (u) => {
      await s.services.start(u);
      hooks.start?.(u);
    },
    stop: async (u) => {
      await s.services.stop(u);
      hooks.stop?.(u);
    },
    restart: (u) => s.services.restart(u),
    enable: (u) => s.services.enable(u),
    disable: (u) => s.services.disable(u),
    daemonReload: () => s.services.daemonReload(),
    isActive: (u) => s.services.isActive(u),
  };
}

/** The credentials file content for a key. */
export const credentials = (key: string): string => `username=contosofiles\npassword=${key}\n`;

/** Real path of the test account's credentials file. */
export const credentialsFile = (root: string): string => path.join(root, 'etc/smbcredentials/contosofiles.cred');

/**
 * An https agent that sends every cloud's ARM host (management.azure.com,
 * management.chinacloudapi.cn, management.usgovcloudapi.net, ...) to the ARM
 * fake, and anything else where fakes.httpsAgent() would. The agent can then
 * be configured with a real cloud endpoint, and the token it asks IMDS for
 * follows that endpoint, as on a VM in that cloud.
 */
export function cloudArmAgent(fakes: Fakes): https.Agent {
  const arm = new URL(fakes.urls.arm);
  class CloudArmAgent extends https.Agent {
    override createConnection(options: https.RequestOptions, callback?: (err: Error | null, stream: Duplex) => void): Duplex {
      if (!/^management\./.test(options.host ?? options.hostname ?? '')) return super.createConnection(options, callback) as Duplex;
      return tls.connect({
        host: arm.hostname,
        port: Number(arm.port),
        ca: fakes.ca,
        servername: 'localhost',
        checkServerIdentity: (_host, cert) => tls.checkServerIdentity('localhost', cert),
      });
    }
  }
  return new CloudArmAgent({ ca: fakes.ca, lookup: loopbackLookup });
}
