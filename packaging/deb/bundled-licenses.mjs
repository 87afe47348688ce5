// Prints one line per npm package that may end up in the bundle (the
// production dependency tree): "name version license". The bundle inlines
// their code, so their licenses belong in the package's copyright file.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const repo = process.argv[2] ?? process.cwd();
const out = execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], {
  cwd: repo,
  encoding: 'utf8',
  stdio: ['ignore', 'pipe', 'ignore'],
  maxBuffer: 16 * 1024 * 1024,
});
const seen = new Map();
for (const dir of out.split('\n')) {
  if (!dir.includes(`${path.sep}node_modules${path.sep}`)) continue;
  let pkg;
  try {
    pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'));
  } catch {
    continue;
  }
  const license = typeof pkg.license === 'string' ? pkg.license : (pkg.license?.type ?? 'UNKNOWN');
  seen.set(`${pkg.name} ${pkg.version}`, license);
}
for (const [id, license] of [...seen].sort(([a], [b]) => a.localeCompare(b))) {
  console.log(`${id} ${license}`);
}
