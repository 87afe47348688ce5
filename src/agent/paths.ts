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
  return {
    root: resolvedRoot,
    under,
    configFile: under('/etc/dsvm-agent/config.yaml'),
    configDir: under('/etc/dsvm-agent'),
    stateDir: under('/var/lib/dsvm-agent'),
    stateFile: under('/var/lib/dsvm-agent/state.json'),
    lockFile: under('/var/lib/dsvm-agent/agent.lock'),
    runDir: under('/run/dsvm-agent'),
    socketFile: under('/run/dsvm-agent/agent.sock'),
    loginSettingsFile: under('/run/dsvm-agent/login-settings.json'),
    statusFile: under('/run/dsvm-agent/status.json'),
    smbCredentialsDir: under('/etc/smbcredentials'),
    sssdConf: under('/etc/sssd/sssd.conf'),
    krb5Conf: under('/etc/krb5.conf'),
    krb5Keytab: under('/etc/krb5.keytab'),
    nsswitchConf: under('/etc/nsswitch.conf'),
    realmdConf: under('/etc/realmd.conf'),
    sudoersDir: under('/etc/sudoers.d'),
    sshdConfigDir: under('/etc/ssh/sshd_config.d'),
    pamConfigsDir: under('/usr/share/pam-configs'),
    pamDir: under('/etc/pam.d'),
    osRelease: under('/etc/os-release'),
    sssdDbDir: under('/var/lib/sss/db'),
    fstab: under('/etc/fstab'),
    systemdUnitDir: under('/etc/systemd/system'),
    systemdRunDir: under('/run/systemd/system'),
    hostnameFile: under('/etc/hostname'),
    hostsFile: under('/etc/hosts'),
    productUuid: under('/sys/class/dmi/id/product_uuid'),
    cloudInstanceId: under('/var/lib/cloud/data/instance-id'),
    metricsTextfile: under('/var/lib/prometheus/node-exporter/dsvm-agent.prom'),
    procMounts: under('/proc/self/mountinfo'),
    mountCifsHelper: under('/sbin/mount.cifs'),
    mountNfsHelper: under('/sbin/mount.nfs'),
  };
}
