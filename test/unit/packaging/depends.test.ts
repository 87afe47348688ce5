// Every program the agent runs comes with the package: its package is in the
// .deb's Depends, or is Essential (always installed). The list below is
// checked both ways against the `file: '...'` literals in src/, so a new
// program in the code fails here until it is listed and its package depended on.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

/** The programs the agent runs, and why. */
const PROGRAMS: Record<string, string> = {
  adcli: 'join, testjoin, show-computer and delete-computer',
  findmnt: 'the mount table',
  getent: 'user, group and host look-ups through NSS',
  id: "a user's groups",
  journalctl: "a mount unit's log for a mount failure",
  kinit: 'the KDC name probe',
  klist: "the keytab's machine principal",
  mkhomedir_helper: 'home creation where no PAM session ran (JupyterHub)',
  ldapmodify: "the computer object's description where adcli 0.9.0 has no join --description",
  ldapsearch:
    "the computer object's attributes where adcli 0.9.0 has no show-computer (Ubuntu 20.04, Debian 11); the pool's objects for sweep",
  mount: 'mounting without systemd (containers, the lab)',
  nsupdate: "removing this VM's DNS record on scale-in (GSS-TSIG, signed with the machine keytab)",
  nft: 'the IMDS guard (azure.imdsAccess): list, load and delete table inet dsvm_agent',
  'pam-auth-update': 'the home-creation PAM profile',
  readlink: "the home link, read with the user's privileges",
  stat: 'share folders and file-system types, without blocking the event loop on a hung share',
  systemctl: 'the service manager door',
  'systemd-run': "unmounting in PID 1's mount namespace under systemd",
  umount: 'unmounting a busy share',
  visudo: 'checking the sudoers drop-in before it is installed',
  sssctl: "checking sssd.conf with the installed sssd's rules before it is installed",
};

/**
 * Programs run without a `file: '...'` literal naming them, or (the adcli
 * 0.9.0 fallback) depended on before the code that runs them lands: move
 * those to PROGRAMS once src names them.
 */
const INDIRECT: Record<string, string> = {
  'systemd-notify': 'the daemon notifier (daemon/notify.ts: `binary ?? ...`)',
  flock: 'the config-writer lock (agent/lock.ts runs it with execa directly, to hand it a descriptor)',
  'mount.cifs': 'what mount(8) and PID 1 run for an SMB share',
  sssd: 'started directly where there is no systemd (service-manager.ts)',
};

/** `file: '...'` literals that are not programs. */
const NOT_PROGRAMS: Record<string, string> = {
  '/nonexistent': "a secret reference in deprovision's built-in config",
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    return statSync(p).isDirectory() ? sourceFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

function fileLiterals(): Set<string> {
  const found = new Set<string>();
  for (const f of sourceFiles('src')) for (const m of readFileSync(f, 'utf8').matchAll(/\bfile: '([^']+)'/g)) found.add(m[1]!);
  return found;
}

/** The Depends line of the control file packaging/deb/build writes (without the computed shlibs). */
function depends(): Set<string> {
  const line = /^Depends: (.*)$/m.exec(readFileSync('packaging/deb/build', 'utf8'))?.[1];
  if (!line) throw new Error('packaging/deb/build: no Depends: line');
  return new Set(
    line
      .split(',')
      .flatMap((d) => d.split('|'))
      .map((d) => d.replace(/\(.*?\)/g, '').trim())
      .filter((d) => d && !d.startsWith('$')),
  );
}

const dpkg = (args: string[]) => spawnSync('dpkg-query', args, { encoding: 'utf8' });

/** The installed package that ships this program (usr-merged systems list /bin paths for /usr/bin files). */
function owner(program: string): { pkg?: string; where?: string } {
  for (const dir of ['/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
    const p = path.join(dir, program);
    if (!existsSync(p)) continue;
    for (const alias of [p, p.replace(/^\/usr/, ''), `/usr${p}`]) {
      const r = dpkg(['-S', alias]);
      const pkg = r.status === 0 ? /^([^:,\s]+)/.exec(r.stdout)?.[1] : undefined;
      if (pkg) return { pkg, where: alias };
    }
    return { where: p };
  }
  return {};
}

t.test('the list matches the programs named in src/', async (t) => {
  const literals = fileLiterals();
  for (const name of literals)
    t.ok(
      name in PROGRAMS || name in INDIRECT || name in NOT_PROGRAMS,
      `"${name}" (run by src) is listed; if not, add it and its package to Depends`,
    );
  for (const name of Object.keys(PROGRAMS)) t.ok(literals.has(name), `"${name}" (listed) is still run by src; if not, drop it`);
});

const noDpkg =
  spawnSync('dpkg-query', ['--version']).status === 0
    ? false
    : 'dpkg-query is not installed on this host: cannot tell which package ships each program';

t.test("every program's package is in Depends or Essential", { skip: noDpkg }, async (t) => {
  const deps = depends();
  for (const [program, why] of Object.entries({ ...PROGRAMS, ...INDIRECT })) {
    const { pkg, where } = owner(program);
    if (!pkg) {
      t.fail(
        where
          ? `${program} (${why}): ${where} belongs to no installed package`
          : `${program} (${why}) is not installed on this host: install the package that ships it to check it`,
      );
      continue;
    }
    const essential = dpkg(['-W', '-f=${Essential}', pkg]).stdout.trim() === 'yes';
    t.ok(
      deps.has(pkg) || essential,
      `${program} (${why}): ${pkg} is ${deps.has(pkg) ? 'in Depends' : essential ? 'Essential' : 'neither in Depends nor Essential'}`,
    );
  }
});
