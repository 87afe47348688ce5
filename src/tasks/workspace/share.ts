import type { Runner } from '../../agent/runner.js';
import { bothDirectories, type UserLinksPlan } from './plan.js';
import { parseChildReport } from './child-report.js';

/**
 * The share side of a login: `<root>/<folder>/<notebooks>`, made by root.
 *
 * A process that touches a dead CIFS server sleeps in the kernel until
 * SIGKILL, so every access to the share happens in a child with a SIGKILL
 * deadline, never in the login process or the daemon itself.
 *
 * On a key-mounted CIFS share every user may create anything anywhere, so
 * another user may have planted `<root>/alice` (as a symlink to their own
 * folder, say). The child never follows a link at either level: lstat, mkdir,
 * lstat again, and a link found is reported, not used; each level is then
 * entered and checked (same device and inode) so later steps work on the
 * inspected folder, not on a path someone can swap. Ownership and mode are
 * set through a descriptor of that folder, and only where the file system
 * honours them (not CIFS, where chown/chmod succeed and do nothing).
 */

export interface ShareReport {
  state: 'ok' | 'created' | 'refused' | 'root-missing' | 'error';
  changes: string[];
  warnings: string[];
  /** False on CIFS: ownership and mode come from the mount options there. */
  ownershipHonoured?: boolean;
}

/** Mode of the folders the agent creates where modes mean something: the user's own. */
export const USER_DIR_MODE = 0o700;

export const SHARE_CHILD_SCRIPT = String.raw`'use strict';
const fs = require('fs');
const path = require('path');
const a = JSON.parse(process.argv[process.argv.length - 1]);
const out = { state: 'ok', changes: [], warnings: [] };
const kind = (st) => st.isSymbolicLink() ? 'a symbolic link' : st.isDirectory() ? 'a folder' : st.isFile() ? 'a file' : 'a special file';
const lstatOrNull = (p) => { try { return fs.lstatSync(p); } catch (e) { if (e.code === 'ENOENT') return null; throw e; } };
// CIFS (SMB1 and SMB2+ magics): chown/chmod "succeed" and change nothing.
const CIFS = new Set([0xff534d42, 0xfe534d42]);
function run() {
  let root = lstatOrNull(a.root);
  if (root === null && a.createRoot) { fs.mkdirSync(a.root, { recursive: true, mode: 0o755 }); out.changes.push('created ' + a.root); root = fs.lstatSync(a.root); }
  if (root === null) { out.warnings.push(a.root + ' does not exist'); return ('root-missing'); }
  if (!root.isDirectory()) { out.warnings.push(a.root + ' is ' + kind(root) + ', not a folder'); return ('refused'); }
  out.ownershipHonoured = !CIFS.has(Number(fs.statfsSync(a.root).type));
  // Node has no mkdirat(): the working directory stands in for the directory
  // descriptor. Each level is entered only after checking it is the folder
  // just inspected, so a link swapped in afterwards is never followed.
  process.chdir(a.root);
  let where = a.root;
  for (const name of [a.folder, a.notebooks]) {
    where = path.join(where, name);
    let st = lstatOrNull(name);
    let created = false;
    if (st === null) {
      try { fs.mkdirSync(name, a.mode); created = true; out.changes.push('created ' + where); } catch (e) { if (e.code !== 'EEXIST') throw e; }
      st = fs.lstatSync(name);
    }
    if (st.isSymbolicLink()) {
      let to = '?'; try { to = fs.readlinkSync(name); } catch (e) {}
      out.warnings.push(where + ' is a symbolic link to ' + JSON.stringify(to) + ': not followed, left alone (remove it to get the folder)');
      return ('refused');
    }
    if (!st.isDirectory()) { out.warnings.push(where + ' is ' + kind(st) + ', not a folder: left alone'); return ('refused'); }
    process.chdir(name);
    const here = fs.statSync('.');
    if (here.ino !== st.ino || here.dev !== st.dev) { out.warnings.push(where + ' was replaced while being checked: left alone'); return ('refused'); }
    if (!out.ownershipHonoured) continue;
    if (!created) {
      if (st.uid !== a.uid && st.uid !== 0) { out.warnings.push(where + ' belongs to uid ' + st.uid + ', not ' + a.uid + ': left alone'); return ('refused'); }
      continue;
    }
    const fd = fs.openSync('.', fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    try { fs.fchownSync(fd, a.uid, a.gid); fs.fchmodSync(fd, a.mode); }
    catch (e) { out.warnings.push('could not set owner/mode of ' + where + ': ' + e.code + ' (root squashed?)'); }
    finally { fs.closeSync(fd); }
  }
  return (out.changes.length ? 'created' : 'ok');
}
// One answer, written once, after everything: no process.exit() inside the
// logic, so nothing can print a second, contradictory report.
try {
  out.state = run();
} catch (e) {
  out.warnings.push(String(e && e.message || e));
  out.state = 'error';
}
process.stdout.write(JSON.stringify(out));
`;

export function shareChildArgs(plan: UserLinksPlan, root: string, createRoot: boolean): string[] {
  const spec = {
    root,
    folder: plan.folder,
    notebooks: plan.notebooksDir.slice(plan.userDir.length + 1),
    uid: plan.account.uid,
    gid: plan.account.gid,
    mode: USER_DIR_MODE,
    createRoot,
  };
  return ['-e', SHARE_CHILD_SCRIPT, '--', JSON.stringify(spec)];
}

/** Parse the child's report; anything unexpected is an error report, never a throw. */
export const parseShareReport = (stdout: string, fallback: string): ShareReport => parseChildReport<ShareReport>(stdout, fallback);

/**
 * The fast path: one `stat` (no Node start-up) saying both folders already
 * exist as real folders; 'hung' when it had to be killed (the share does not answer).
 */
export async function shareFoldersState(run: Runner, plan: UserLinksPlan, timeoutMs: number): Promise<'in-place' | 'not-yet' | 'hung'> {
  const r = await run({ file: 'stat', args: ['-c', '%F', '--', plan.userDir, plan.notebooksDir], cwd: '/', timeoutMs });
  if (r.timedOut) return 'hung';
  return r.exitCode === 0 && bothDirectories(r.stdout) ? 'in-place' : 'not-yet';
}

/** Run the root-side child under a SIGKILL deadline. */
export async function ensureShareFolders(
  run: Runner,
  nodeBinary: string,
  plan: UserLinksPlan,
  opts: { root: string; createRoot: boolean; timeoutMs: number },
): Promise<ShareReport> {
  const r = await run({ file: nodeBinary, args: shareChildArgs(plan, opts.root, opts.createRoot), cwd: '/', timeoutMs: opts.timeoutMs });
  if (r.timedOut) {
    return {
      state: 'error',
      changes: [],
      warnings: [`${opts.root} did not answer within ${opts.timeoutMs} ms (share hung?): the child was killed`],
    };
  }
  return parseShareReport(
    r.stdout,
    `the share step for ${plan.account.name} failed: ${(r.startError ?? r.stderr.trim()) || `exit ${r.exitCode ?? r.signal}, output ${JSON.stringify(r.stdout.slice(0, 200))}`}`,
  );
}
