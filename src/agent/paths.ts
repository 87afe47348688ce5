import path from 'node:path';

/**
 * Every absolute path the agent touches, in one place. A test (or the lab)
 * points the whole agent at a temporary tree by giving a root prefix; real
 * VMs use "/". Paths that come from the config (mount point, workspace root)
 * go through {@link Paths.under} so they honour the same prefix.
 */
export interface Paths {
  /** The root prefix ("/" on a real VM). */
  readonly root: string;
  /** Map an absolute system path under the root prefix. */
  under(absolutePath: string): string;
  readonly configFile: string;
  readonly configDir: string;
  readonly stateDir: string;
  readonly stateFile: string;
  /**
   * The lock every writer of system configuration holds (agent/lock.ts). In
   * the state directory, not the runtime one: systemd empties
   * RuntimeDirectory= at every stop and restart, under a holder's feet.
   */
  readonly lockFile: string;
  readonly runDir: string;
  readonly socketFile: string;
  /** The login hook's cache of config values it needs before any big import (see tasks/workspace/request.ts). */
  readonly loginSettingsFile: string;
  readonly statusFile: string;
  readonly smbCredentialsDir: string;
  readonly sssdConf: string;
  readonly krb5Conf: string;
  readonly krb5Keytab: string;
  readonly nsswitchConf: string;
  readonly realmdConf: string;
  readonly sudoersDir: string;
  readonly sshdConfigDir: string;
  readonly pamConfigsDir: string;
  readonly pamDir: string;
  readonly osRelease: string;
  readonly sssdDbDir: string;
  readonly fstab: string;
  readonly systemdUnitDir: string;
  readonly systemdRunDir: string;
  readonly hostnameFile: string;
  readonly hostsFile: string;
  readonly productUuid: string;
  readonly cloudInstanceId: string;
  readonly metricsTextfile: string;
  readonly procMounts: string;
  /** mount(8) helpers: looked for where mount(8) looks, to say which package is missing. */
  readonly mountCifsHelper: string;
  readonly mountNfsHelper: string;
}

/** Build the path table for a root prefix. */
export function makePaths(root = '/'): Paths {
  const resolvedRoot = path.resolve(root);
  const under = (p: string): string => {
    if (!path.isAbsolute(p)) throw new Error(`internal: path "${p}" must be absolute`);
    return resolvedRoot === '/' ? path.normalize(p) : path.join(resolvedRoot, p);
  };
  // The fixed paths below are absolute and already normal, and path.resolve
  // gives a normal root, so joining them is plain concatenation (the same
  // string as `under`, test/unit/core/paths.test.ts). The login hook builds
  // this table in every login: 32 path.join calls, still in V8's
  // interpreter, cost it about 1 to 2 ms of CPU (bench/login.ts).
  const fixed = (p: string): string => (resolvedRoot === '/' ? p : resolvedRoot + p);
  return {
    root: resolvedRoot,
    under,
    configFile: fixed('/etc/dsvm-agent/config.yaml'),
    configDir: fixed('/etc/dsvm-agent'),
    stateDir: fixed('/var/lib/dsvm-agent'),
    stateFile: fixed('/var/lib/dsvm-agent/state.json'),
    lockFile: fixed('/var/lib/dsvm-agent/agent.lock'),
    runDir: fixed('/run/dsvm-agent'),
    socketFile: fixed('/run/dsvm-agent/agent.sock'),
    loginSettingsFile: fixed('/run/dsvm-agent/login-settings.json'),
    statusFile: fixed('/run/dsvm-agent/status.json'),
    smbCredentialsDir: fixed('/etc/smbcredentials'),
    sssdConf: fixed('/etc/sssd/sssd.conf'),
    krb5Conf: fixed('/etc/krb5.conf'),
    krb5Keytab: fixed('/etc/krb5.keytab'),
    nsswitchConf: fixed('/etc/nsswitch.conf'),
    realmdConf: fixed('/etc/realmd.conf'),
    sudoersDir: fixed('/etc/sudoers.d'),
    sshdConfigDir: fixed('/etc/ssh/sshd_config.d'),
    pamConfigsDir: fixed('/usr/share/pam-configs'),
    pamDir: fixed('/etc/pam.d'),
    osRelease: fixed('/etc/os-release'),
    sssdDbDir: fixed('/var/lib/sss/db'),
    fstab: fixed('/etc/fstab'),
    systemdUnitDir: fixed('/etc/systemd/system'),
    systemdRunDir: fixed('/run/systemd/system'),
    hostnameFile: fixed('/etc/hostname'),
    hostsFile: fixed('/etc/hosts'),
    productUuid: fixed('/sys/class/dmi/id/product_uuid'),
    cloudInstanceId: fixed('/var/lib/cloud/data/instance-id'),
    metricsTextfile: fixed('/var/lib/prometheus/node-exporter/dsvm-agent.prom'),
    procMounts: fixed('/proc/self/mountinfo'),
    mountCifsHelper: fixed('/sbin/mount.cifs'),
    mountNfsHelper: fixed('/sbin/mount.nfs'),
  };
}
