/**
 * A minimal sssd in a client VM, for lab tests that need AD users to resolve
 * before (or without) the agent configuring it. The client VM's /etc is a
 * throwaway overlay; the files touched are still saved and put back, so the
 * next test finds the client as it was. The VM must already be joined, with
 * its keytab at /etc/krb5.keytab.
 */
import { clientExec, describeResult, lab, labEnv, readLabSecret, type ExecResult } from './harness.js';

/** Writes sssd.conf, krb5.conf and nsswitch, starts sssd, waits for alice. */
export function startLabSssd(client: string, hostFqdn: string): Promise<ExecResult> {
  const env = labEnv();
  return clientExec(client, ['bash', '-c', SSSD_SETUP, 'sssd-setup', hostFqdn, env.DOMAIN, env.REALM]);
}

/**
 * A client VM joined for real, as the lab tests that need AD users start:
 * `client-up`, a raw `adcli join` into the lab's OU (the join password on
 * stdin), then this sssd. Throws with the failing step's output.
 */
export async function upJoinedClient(client: string, ip: string, hostname: string, computer: string): Promise<void> {
  const env = labEnv();
  const up = await lab(['client-up', client, ip, hostname], { timeoutMs: 120_000 });
  if (up.exitCode !== 0) throw new Error(describeResult('client-up', up));
  const join = await labJoin(client, computer);
  if (join.exitCode !== 0) throw new Error(describeResult('adcli join', join));
  const sssd = await startLabSssd(client, `${computer.toLowerCase()}.${env.DOMAIN}`);
  if (sssd.exitCode !== 0) throw new Error(describeResult('sssd', sssd));
}

/**
 * A raw `adcli join` of the client into the lab's OU as the join account,
 * the password on stdin (the lab's own unless given: a wrong one proves a
 * refusal). The keytab goes to /etc/krb5.keytab unless given.
 */
export function labJoin(client: string, computer: string, opts: { keytab?: string; password?: string } = {}): Promise<ExecResult> {
  const env = labEnv();
  return clientExec(
    client,
    [
      'adcli',
      'join',
      `--domain=${env.DOMAIN}`,
      `--login-user=${env.JOIN_USER}`,
      '--stdin-password',
      `--computer-name=${computer}`,
      `--host-fqdn=${computer.toLowerCase()}.${env.DOMAIN}`,
      `--domain-ou=${env.JOIN_OU}`,
      ...(opts.keytab ? [`--host-keytab=${opts.keytab}`] : []),
    ],
    { input: `${opts.password ?? readLabSecret('join-password')}\n` },
  );
}

/** Stops that sssd (by pid: other client VMs may run one), clears its caches, restores the files. */
export function stopLabSssd(client: string): Promise<ExecResult> {
  return clientExec(client, ['bash', '-c', SSSD_TEARDOWN]);
}

const SSSD_SETUP = `set -euo pipefail
fqdn=$1 domain=$2 realm=$3
mkdir -p /root/.lab-sssd-backup
for f in /etc/krb5.conf /etc/nsswitch.conf /etc/sssd/sssd.conf; do
  [ -e "$f" ] && cp -a "$f" "/root/.lab-sssd-backup/$(basename "$f")"
done
printf '[libdefaults]\\n default_realm = %s\\n dns_lookup_kdc = true\\n rdns = false\\n' "$realm" >/etc/krb5.conf
sed -i -E 's/^(passwd|group):.*/\\1: files sss/' /etc/nsswitch.conf
mkdir -p /etc/sssd
(umask 077 && cat >/etc/sssd/sssd.conf <<EOF
[sssd]
services = nss, pam
domains = $domain

[domain/$domain]
id_provider = ad
access_provider = permit
ad_domain = $domain
krb5_realm = $realm
ad_hostname = $fqdn
ldap_id_mapping = true
use_fully_qualified_names = false
cache_credentials = false
dyndns_update = false
EOF
)
sssd -D --logger=files
for i in $(seq 50); do getent passwd alice >/dev/null && exit 0; sleep 0.2; done
echo "sssd did not resolve alice in 10 s" >&2
exit 1
`;

const SSSD_TEARDOWN = `set -uo pipefail
# By pid only: a name would match sssd of other client VMs on this machine.
if [ -f /run/sssd.pid ]; then
  pid=$(cat /run/sssd.pid)
  kill "$pid" 2>/dev/null
  for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null
  rm -f /run/sssd.pid
fi
rm -f /var/lib/sss/db/* /var/lib/sss/mc/* /etc/krb5.keytab /etc/sssd/sssd.conf
for f in krb5.conf nsswitch.conf sssd.conf; do
  [ -e "/root/.lab-sssd-backup/$f" ] || continue
  case $f in sssd.conf) dest=/etc/sssd/$f ;; *) dest=/etc/$f ;; esac
  cp -a "/root/.lab-sssd-backup/$f" "$dest"
done
rm -rf /root/.lab-sssd-backup
exit 0
`;
