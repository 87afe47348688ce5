import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startFakes, type Fakes, type Seed } from '../../fakes/index.js';
import { fileURLToPath } from 'node:url';
import type { FakeCommand } from '../../helpers/fake-runner.js';
import type { Paths } from '../../../src/agent/paths.js';

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
  /** Called on every umount, e.g. to see what else had happened by then. */
  onUmount: () => void = () => undefined;
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
        result: () => {
          if (this.mountResult.exitCode === 0) this.state = 'findmnt-cifs.json';
          return this.mountResult;
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
