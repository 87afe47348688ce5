/**
 * The workspace share against the lab's real SMB server and the Azure fakes,
 * inside client VM c1. The host kernel has no cifs module, so the kernel
 * mount itself fails here (and must say so); everything up to it is real:
 * DNS, TCP 445, the credentials file and unit the agent writes (proved with
 * smbclient against the real smbd), the Files REST calls (fake), and no key
 * in any process's argv while it all runs.
 */
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { clientExec, describeResult, fakesUrls, labEnv, labSkipReason, PROJECT_ROOT, readLabSecret, type ExecResult } from './harness.js';

const skip = labSkipReason();
const CLIENT = 'c1';
const TSX = path.join(PROJECT_ROOT, 'node_modules/.bin/tsx');
const DRIVER = path.join(PROJECT_ROOT, 'test/fixtures/share-mount/drive-task.ts');
const id = `${process.pid}`;
const mountPoint = `/data/share-lab-${id}`;
const unitName = `data-share\\x2dlab\\x2d${id}.mount`;

/** Write a root-only file in the client VM; the content travels on stdin only. */
async function writeClientFile(file: string, content: string, mode = '600'): Promise<void> {
  const r = await clientExec(
    CLIENT,
    ['sh', '-c', 'umask 077 && mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"', 'sh', file, mode],
    { input: content },
  );
  if (r.exitCode !== 0) throw new Error(describeResult(`writing ${file}`, r));
}

async function clientRead(file: string): Promise<string> {
  const r = await clientExec(CLIENT, ['cat', file]);
  if (r.exitCode !== 0) throw new Error(describeResult(`reading ${file}`, r));
  return r.stdout;
}

interface Outcome {
  status: string;
  kind?: string;
  reason?: string;
  message?: string;
  fix?: string;
  [k: string]: unknown;
}

/** Run the share task (or an operation) in the client as the agent would; returns its JSON outcome and the raw run. */
async function drive(config: string, ...action: string[]): Promise<{ out: Outcome; run: ExecResult }> {
  const run = await clientExec(CLIENT, [TSX, DRIVER, '--config', config, ...action], { timeoutMs: 180_000 });
  const line = run.stdout.trim().split('\n').at(-1) ?? '';
  try {
    return { out: JSON.parse(line) as Outcome, run };
  } catch {
    throw new Error(describeResult('share driver', run));
  }
}

/**
 * Sample every process's argv on this machine (the client VM shares the
 * host's PID namespace) until stopped; returns the argv lines that hold
 * `needle`, and those `control` picks (redacted the same way), which prove
 * the sampler looked while the process that matters was running: a scan
 * that never saw it proves nothing. The needle stays in this process: it is
 * never put in an argv.
 *
 * Processes already running at the first pass are read once; later passes
 * read only processes started since (a forked child is read again on every
 * pass, since it may exec). A pass then takes about a millisecond, so a mount
 * helper that lives a few milliseconds is still caught.
 */
function sampleCmdlines(
  needle: string,
  control: (argv: string[]) => boolean,
): { stop(): Promise<{ samples: number; hits: string[]; seen: string[] }> } {
  let running = true;
  let samples = 0;
  const hits: string[] = [];
  const seen = new Set<string>();
  const earlier = new Set<string>();
  const loop = (async () => {
    while (running) {
      const pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
      // A pid that went away may come back as a new process: read it again then.
      const alive = new Set(pids);
      for (const pid of earlier) if (!alive.has(pid)) earlier.delete(pid);
      for (const pid of pids) {
        if (earlier.has(pid)) continue;
        if (samples === 0) earlier.add(pid);
        let cmdline = '';
        try {
          cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        } catch {
          continue;
        }
        const shown = `${pid}: ${cmdline.split('\0').join(' ').split(needle).join('<KEY>')}`;
        if (cmdline.includes(needle)) hits.push(shown);
        if (control(cmdline.split('\0').filter(Boolean))) seen.add(shown);
      }
      samples++;
      await new Promise((r) => setImmediate(r));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { samples, hits, seen: [...seen] };
    },
  };
}

/** mount(8) or mount.cifs itself (not a wrapper naming it), given the credentials file. */
const mountWithCredentials = (argv: string[]): boolean =>
  /(^|\/)mount(\.cifs)?$/.test(argv[0] ?? '') && argv.some((a) => a.includes('credentials='));

function yaml(opts: { keyFile: string; host?: string }): string {
  const env = labEnv();
  const fakes = fakesUrls(CLIENT);
  return [
    'azure:',
    `  imdsEndpoint: ${fakes.imds}`,
    `  managementEndpoint: ${fakes.arm}`,
    'domain:',
    `  name: ${env.DOMAIN}`,
    `  joinUser: ${env.JOIN_USER}`,
    '  joinPassword: { file: /etc/dsvm-agent/unused-join-password }',
    'share:',
    `  account: ${env.STORAGE_ACCOUNT}`,
    `  name: ${env.SHARE_NAME}`,
    `  endpointSuffix: ${env.ENDPOINT_SUFFIX}`,
    ...(opts.host ? [`  host: ${opts.host}`] : []),
    `  filesEndpoint: ${fakes.files}/${env.STORAGE_ACCOUNT}`,
    `  mountPoint: ${mountPoint}`,
    `  key: { file: ${opts.keyFile} }`,
    '',
  ].join('\n');
}

t.test('workspace share in the lab', { skip }, async (t) => {
  const env = labEnv();
  const key = readLabSecret('storage-key');
  const goodConfig = `/etc/dsvm-agent/share-lab-${id}.yaml`;
  await writeClientFile(`/etc/dsvm-agent/share-lab-${id}.key`, `${key}\n`);
  await writeClientFile(goodConfig, yaml({ keyFile: `/etc/dsvm-agent/share-lab-${id}.key` }), '644');
  t.teardown(async () => {
    await drive(goodConfig, 'undo').catch(() => undefined);
    await clientExec(CLIENT, [
      'rm',
      '-f',
      goodConfig,
      `/etc/dsvm-agent/share-lab-${id}.key`,
      `/etc/dsvm-agent/share-lab-${id}-wrong.key`,
      `/etc/dsvm-agent/share-lab-${id}-wrong.yaml`,
      `/etc/dsvm-agent/share-lab-${id}-down.yaml`,
    ]);
    await clientExec(CLIENT, ['rmdir', mountPoint]);
  });

  t.test('provision writes the credentials and unit, then says the kernel has no CIFS', async (t) => {
    const sampler = sampleCmdlines(key, mountWithCredentials);
    const { out, run } = await drive(goodConfig, 'provision');
    const argvScan = await sampler.stop();
    t.match(
      out,
      {
        status: 'failed',
        kind: 'permanent',
        reason: 'share-kernel-no-cifs',
        message: /mount error\(19\).*The kernel has no CIFS support/,
        fix: /modprobe cifs/,
      },
      describeResult('provision', run),
    );
    t.ok(argvScan.samples > 10, `argv sampled ${argvScan.samples} times while the agent worked`);
    t.ok(
      argvScan.seen.length > 0,
      `the sampler saw the mount itself (${argvScan.seen[0] ?? 'never'}): it looked while the credentials were in use`,
    );
    t.same(argvScan.hits, [], 'the key was in no process argv');
    t.notOk(run.stderr.includes(key) || run.stdout.includes(key), 'the key is in no log line or output');
    t.match(
      run.stderr,
      /exec mount -t cifs -o vers=3\.1\.1,credentials=\/etc\/smbcredentials\/contosofiles\.cred,/,
      'mount(8) got the credentials file, not the key',
    );

    const cred = await clientExec(CLIENT, ['stat', '-c', '%a %u %g', '/etc/smbcredentials/contosofiles.cred', '/etc/smbcredentials']);
    t.equal(cred.stdout, '600 0 0\n700 0 0\n', 'credentials file root 0600 in a root 0700 directory');
    const unit = await clientRead(`/etc/systemd/system/${unitName}`);
    t.match(unit, `What=//${env.FILES_HOST}/${env.SHARE_NAME}`);
    t.match(unit, `Where=${mountPoint}`);
    t.notOk(unit.includes(key), 'no key in the unit');
  });

  t.test('smbclient with the exact credentials file and server name the agent wrote lists the share', async (t) => {
    const unit = await clientRead(`/etc/systemd/system/${unitName}`);
    const what = /^What=(.+)$/m.exec(unit)?.[1] ?? '';
    const credentials = /credentials=([^,\s]+)/.exec(unit)?.[1] ?? '';
    t.equal(what, `//${env.FILES_HOST}/${env.SHARE_NAME}`);
    const marker = `share-lab-${id}.txt`;
    writeFileSync(path.join(env.SHARE_DIR, marker), 'written on the server side\n');
    t.teardown(() => rmSync(path.join(env.SHARE_DIR, marker), { force: true }));
    const sampler = sampleCmdlines(key, (argv) => /(^|\/)smbclient$/.test(argv[0] ?? '') && argv.includes('-A'));
    const r = await clientExec(CLIENT, ['smbclient', what, '-A', credentials, '-m', 'SMB3', '-c', 'ls'], { timeoutMs: 30_000 });
    const argvScan = await sampler.stop();
    t.equal(r.exitCode, 0, describeResult('smbclient', r));
    t.match(r.stdout, marker, 'the listing shows the file the storage server holds');
    t.ok(argvScan.seen.length > 0, `the sampler saw smbclient itself (${argvScan.seen[0] ?? 'never'})`);
    t.same(argvScan.hits, [], 'the key was in no argv while smbclient ran');
  });

  t.test('a wrong key is an authentication failure with the fix', async (t) => {
    const wrong = Buffer.from(key, 'base64').reverse().toString('base64');
    await writeClientFile(`/etc/dsvm-agent/share-lab-${id}-wrong.key`, `${wrong}\n`);
    const config = `/etc/dsvm-agent/share-lab-${id}-wrong.yaml`;
    await writeClientFile(config, yaml({ keyFile: `/etc/dsvm-agent/share-lab-${id}-wrong.key` }), '644');
    const { out, run } = await drive(config, 'provision');
    t.match(
      out,
      { status: 'failed', kind: 'permanent', reason: 'share-auth-failed', message: /refused the key/, fix: /current key1\/key2/ },
      describeResult('provision', run),
    );
    t.notOk(run.stderr.includes(wrong), 'the wrong key is not logged either');
    t.equal(
      await clientRead('/etc/smbcredentials/contosofiles.cred'),
      `username=${env.STORAGE_ACCOUNT}\npassword=${key}\n`,
      'the good credentials file was left as it was',
    );
    // The real SMB server agrees with the verdict: the same wrong key is refused there.
    await writeClientFile(`/etc/dsvm-agent/share-lab-${id}-wrong.cred`, `username=${env.STORAGE_ACCOUNT}\npassword=${wrong}\n`);
    const smb = await clientExec(CLIENT, [
      'smbclient',
      `//${env.FILES_HOST}/${env.SHARE_NAME}`,
      '-A',
      `/etc/dsvm-agent/share-lab-${id}-wrong.cred`,
      '-m',
      'SMB3',
      '-c',
      'ls',
    ]);
    await clientExec(CLIENT, ['rm', '-f', `/etc/dsvm-agent/share-lab-${id}-wrong.cred`]);
    t.match(smb.stdout + smb.stderr, /NT_STATUS_LOGON_FAILURE/, 'smbd refuses the wrong key too');
  });

  t.test('a share host that does not answer is reported as blocked port 445', async (t) => {
    const config = `/etc/dsvm-agent/share-lab-${id}-down.yaml`;
    // An address on the lab bridge nobody holds: no ARP answer, like a firewall dropping 445.
    await writeClientFile(config, yaml({ keyFile: `/etc/dsvm-agent/share-lab-${id}.key`, host: '10.77.0.250' }), '644');
    const { out, run } = await drive(config, 'provision');
    t.match(
      out,
      {
        status: 'failed',
        kind: 'transient',
        reason: 'share-port-blocked',
        message: /TCP 445 \(SMB\) on 10\.77\.0\.250 is not reachable.*A blocked port 445 is the most common Azure Files failure/,
        fix: /allow outbound TCP 445/,
      },
      describeResult('provision', run),
    );
  });

  t.test('usage, quota and folders through the Files REST fake', async (t) => {
    const blob = path.join(env.SHARE_DIR, `share-lab-${id}.bin`);
    writeFileSync(blob, Buffer.alloc(65536));
    t.teardown(() => rmSync(blob, { force: true }));
    const { out, run } = await drive(goodConfig, 'usage');
    t.ok(typeof out.usedBytes === 'number' && typeof out.quotaBytes === 'number', describeResult('usage', run));
    t.ok((out.usedBytes as number) >= 65536, 'usage counts what the storage server holds');
    t.ok((out.quotaBytes as number) > 0 && (out.quotaBytes as number) % 1024 ** 3 === 0, 'quota in whole GiB');
    const folder = `share-lab-${id}/notebooks`;
    t.teardown(() => rmSync(path.join(env.SHARE_DIR, `share-lab-${id}`), { recursive: true, force: true }));
    const made = await drive(goodConfig, 'folder', folder);
    t.same(made.out, { created: [`share-lab-${id}`, folder] }, describeResult('folder', made.run));
    t.ok(statSync(path.join(env.SHARE_DIR, folder)).isDirectory(), 'the folder exists on the storage server');
    t.same((await drive(goodConfig, 'folder', folder)).out, { created: [] }, 'idempotent');
  });

  t.test('probe: nothing mounted here is reported, without touching anything', async (t) => {
    const { out } = await drive(goodConfig, 'probe');
    t.match(out, { mounted: false, responsive: false, reason: /nothing is mounted/ });
  });

  t.test('undo removes unit and credentials', async (t) => {
    const { out } = await drive(goodConfig, 'undo');
    t.same(out, { removed: [`unit /etc/systemd/system/${unitName}`, 'credentials /etc/smbcredentials/contosofiles.cred'] });
    const gone = await clientExec(CLIENT, ['ls', '/etc/smbcredentials/contosofiles.cred']);
    t.not(gone.exitCode, 0);
  });
});
