import type { Runner } from '../../agent/runner.js';
import type { UserLinksPlan } from './plan.js';
import { parseChildReport } from './child-report.js';

/**
 * The $HOME side of a login. Root writing into a directory the user controls
 * is the classic symlink attack (pam_motd CVE-2010-0832, cinnamon
 * CVE-2018-13054, oddjob-mkhomedir CVE-2020-10737), and Node has no
 * openat/mkdirat to do it safely as root. So root never writes there: the
 * work runs in a child with the user's uid and gid and no supplementary
 * groups (libuv calls setgroups(0) before setgid/setuid). Whatever the user
 * has planted, the child can only do what the user could do herself.
 */

/** What the user-side child reports. */
export interface HomeReport {
  state: 'ok' | 'created' | 'home-missing' | 'blocked' | 'error';
  changes: string[];
  warnings: string[];
}

/**
 * The child's program, run by the agent's own Node binary as `node -e`. It
 * is plain JavaScript in a string on purpose: it must not depend on the
 * bundle's file layout (checkout dist/ or /usr/lib/dsvm-agent/dist/) nor on
 * anything the user could influence (no NODE_OPTIONS: the runner gives
 * children a fixed environment; cwd is "/").
 *
 * Rules: never follow a link the user made (lstat, not stat, below $HOME);
 * create a missing folder; make the link with symlink(2), which fails
 * rather than following an existing entry; leave anything else alone and say so.
 */
export const HOME_CHILD_SCRIPT = String.raw`'use strict';
const fs = require('fs');
const path = require('path');
const a = JSON.parse(process.argv[process.argv.length - 1]);
const out = { state: 'ok', changes: [], warnings: [] };
const kind = (st) => st.isSymbolicLink() ? 'a symbolic link' : st.isDirectory() ? 'a folder' : st.isFile() ? 'a file' : st.isFIFO() ? 'a FIFO' : st.isSocket() ? 'a socket' : 'a special file';
const lstatOrNull = (p) => { try { return fs.lstatSync(p); } catch (e) { if (e.code === 'ENOENT') return null; throw e; } };
function run() {
  let home;
  try { home = fs.statSync(a.home); } catch (e) { if (e.code === 'ENOENT') return ('home-missing'); throw e; }
  if (!home.isDirectory()) { out.warnings.push(a.home + ' is not a folder'); return ('blocked'); }
  let cur = a.home;
  for (const part of a.dirs) {
    cur = path.join(cur, part);
    let st = lstatOrNull(cur);
    if (st === null) {
      try { fs.mkdirSync(cur, 0o755); out.changes.push('created ' + cur); } catch (e) { if (e.code !== 'EEXIST') throw e; }
      st = fs.lstatSync(cur);
    }
    if (!st.isDirectory()) { out.warnings.push(cur + ' is ' + kind(st) + ', not a folder: left alone, no link made'); return ('blocked'); }
  }
  const link = path.join(a.home, a.link);
  for (let attempt = 0; attempt < 2; attempt++) {
    const st = lstatOrNull(link);
    if (st === null) {
      try { fs.symlinkSync(a.target, link); out.changes.push('linked ' + link + ' -> ' + a.target); return (out.changes.length ? 'created' : 'ok'); }
      catch (e) { if (e.code === 'EEXIST') continue; throw e; }
    }
    if (st.isSymbolicLink()) {
      const to = fs.readlinkSync(link);
      if (to === a.target) return (out.changes.length ? 'created' : 'ok');
      out.warnings.push(link + ' points to ' + JSON.stringify(to) + ', not ' + a.target + ': left alone');
      return ('blocked');
    }
    out.warnings.push(link + ' is ' + kind(st) + ': left alone (remove or rename it to get the link)');
    return ('blocked');
  }
  return ('error');
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

/** argv for the child: the script, then one JSON argument (no user data is ever parsed as code). */
export function homeChildArgs(plan: UserLinksPlan): string[] {
  const spec = { home: plan.home, dirs: plan.homeDirs, link: plan.homeLink, target: plan.linkTarget };
  return ['-e', HOME_CHILD_SCRIPT, '--', JSON.stringify(spec)];
}

/** Parse the child's report; anything unexpected is an error report, never a throw. */
export const parseHomeReport = (stdout: string, fallback: string): HomeReport => parseChildReport<HomeReport>(stdout, fallback);

/**
 * The fast path, also as the user: `readlink` of the link. When it already
 * points where it should, nothing else is needed (and nothing is written).
 */
export async function homeLinkInPlace(run: Runner, plan: UserLinksPlan, timeoutMs: number): Promise<boolean> {
  const r = await run({
    file: 'readlink',
    args: ['--', `${plan.home}/${plan.homeLink}`],
    uid: plan.account.uid,
    gid: plan.account.gid,
    cwd: '/',
    timeoutMs,
  });
  return r.exitCode === 0 && r.stdout.replace(/\n$/, '') === plan.linkTarget;
}

/** Run the user-side child. */
export async function ensureHomeLink(run: Runner, nodeBinary: string, plan: UserLinksPlan, timeoutMs: number): Promise<HomeReport> {
  const r = await run({
    file: nodeBinary,
    args: homeChildArgs(plan),
    uid: plan.account.uid,
    gid: plan.account.gid,
    cwd: '/',
    timeoutMs,
  });
  if (r.timedOut)
    return { state: 'error', changes: [], warnings: [`the $HOME step for ${plan.account.name} did not finish within ${timeoutMs} ms`] };
  return parseHomeReport(
    r.stdout,
    `the $HOME step for ${plan.account.name} failed: ${(r.startError ?? r.stderr.trim()) || `exit ${r.exitCode ?? r.signal}, output ${JSON.stringify(r.stdout.slice(0, 200))}`}`,
  );
}
