# NoCloud seed for the VM: the agent config pointing at the lab, the fakes'
# CA, the harness's ssh key. Sourced by test/e2e/run.
# shellcheck shell=bash

# Ports the health endpoint and the login bound the assertions rely on.
E2E_HEALTH_PORT=8642
E2E_LOGIN_TIMEOUT_MS=3000

# json_field FILE KEY: a string field of a JSON object.
json_field() {
  node -e 'const o = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const v = o[process.argv[2]]; if (typeof v !== "string") process.exit(1); process.stdout.write(v);' "$1" "$2"
}

url_port() { node -e 'process.stdout.write(new URL(process.argv[1]).port)' "$1"; }

# vm_make_seed URLS_JSON: writes $WORK/seed.img.
vm_make_seed() {
  local urls="$1" imds arm files kv_port ca_pem instance_id
  imds="$(json_field "$urls" imds)"
  arm="$(json_field "$urls" arm)"
  files="$(json_field "$urls" files)"
  kv_port="$(url_port "$(json_field "$urls" keyVault)")"
  ca_pem="$(json_field "$urls" caFile)"
  instance_id="iid-dsvm-e2e-$RUN_ID"
  local seed="$WORK/seed"
  mkdir -p "$seed"

  cat >"$seed/meta-data" <<META
instance-id: $instance_id
local-hostname: $VM_HOSTNAME
META

  cat >"$seed/network-config" <<NET
version: 2
ethernets:
  eth0:
    match:
      macaddress: "$VM_MAC"
    set-name: eth0
    addresses: [$VM_IP/24]
    nameservers:
      addresses: [$VM_GATEWAY_IP]
      search: [$LAB_DOMAIN]
NET

  # The Key Vault client accepts a vault's auth challenge only for a host
  # under *.vault.*; the fake's certificate covers *.vault.localhost, so the
  # VM resolves that name to the fakes through /etc/hosts.
  {
    cat <<USER
#cloud-config
# Harness access: root over ssh with a key made for this run only.
disable_root: false
users: []
ssh_authorized_keys:
  - $(cat "$WORK/id_ed25519.pub")
manage_etc_hosts: false
# The minimal image has no locales package: update-locale would fail the
# config stage and put cloud-init in error.
locale: false

# The unit must see NODE_EXTRA_CA_CERTS from its first start. bootcmd runs
# before write_files and, like all of cloud-init's network stage, before
# network-online.target, which the unit waits for: the drop-in and the reload
# are in place before systemd starts the agent.
bootcmd:
  - mkdir -p /etc/systemd/system/dsvm-agent.service.d
  - printf '[Service]\nEnvironment=NODE_EXTRA_CA_CERTS=/etc/dsvm-agent/e2e-fakes-ca.pem\n' > /etc/systemd/system/dsvm-agent.service.d/50-e2e-fakes-ca.conf
  - systemctl daemon-reload

write_files:
  - path: /etc/resolv.conf
    content: |
      nameserver $VM_GATEWAY_IP
      search $LAB_DOMAIN
  - path: /etc/hosts
    content: |
      127.0.0.1 localhost
      127.0.1.1 $VM_HOSTNAME.$LAB_DOMAIN $VM_HOSTNAME
      $VM_FAKES_IP dsvm.vault.localhost
  - path: /etc/dsvm-agent/e2e-fakes-ca.pem
    permissions: "0644"
    content: |
USER
    sed 's/^/      /' "$ca_pem"
    cat <<USER
  - path: /etc/dsvm-agent/config.yaml
    owner: root:root
    permissions: "0600"
    content: |
      azure:
        imdsEndpoint: $imds
        managementEndpoint: $arm
      domain:
        name: $LAB_DOMAIN
        joinUser: $LAB_JOIN_USER@$LAB_REALM
        joinPassword:
          keyVault:
            vaultUrl: https://dsvm.vault.localhost:$kv_port
            name: $LAB_KV_SECRET
        computerOu: $LAB_JOIN_OU
        computerName: auto
        allowGroups: [$LAB_USERS_GROUP, $LAB_ADMINS_GROUP]
        sudoGroups: [$LAB_ADMINS_GROUP]
      share:
        type: smb
        account: $LAB_STORAGE_ACCOUNT
        name: $LAB_SHARE_NAME
        endpointSuffix: $LAB_DOMAIN
        # SMB goes to the lab's storage server; the Files REST calls (key
        # check, quota) to the Files fake, which serves the same folder.
        filesEndpoint: $files/$LAB_STORAGE_ACCOUNT
        mountPoint: /data/workspace
        auth: key
        # As docs/share.md says a pool needs it: a key mount shows every file
        # as uid/gid, so without the users' group nobody but root could save
        # a notebook (the hub check saves one as alice).
        gid: $LAB_USERS_GROUP
        dirMode: "0770"
        fileMode: "0660"
        key:
          armListKeys:
            subscriptionId: $LAB_SUBSCRIPTION_ID
            resourceGroup: $LAB_RESOURCE_GROUP
      workspace:
        root: /data/workspace
        loginTimeoutMs: $E2E_LOGIN_TIMEOUT_MS
      health:
        listen: 127.0.0.1:$E2E_HEALTH_PORT
        initializingGraceSec: 900
        # Short intervals so a frozen share shows within the test's patience.
        checks:
          share-mounted: { schedule: "*/10 * * * * *" }
          sssd: { schedule: "*/15 * * * * *" }
          domain-trust: { schedule: "*/30 * * * * *" }
          identity-lookup: { schedule: "*/30 * * * * *" }
          # Its first run comes while the emulated VM is still busy booting,
          # where starting the Azure child can pass the check's 30 s bound;
          # every minute, a later run shows the call itself.
          share-quota: { schedule: "0 * * * * *" }

USER
    # The DSVM's hub: its config and unit from packaging/jupyterhub/.
    if suite_has_jupyterhub "$E2E_SUITE"; then seed_hub_write_files; fi
    cat <<USER

# What the product's example does: validate, then hand over to the daemon.
runcmd:
  - dsvm-agent config check && systemctl enable --now --no-block dsvm-agent.service
USER
    if suite_has_jupyterhub "$E2E_SUITE"; then seed_hub_runcmd; fi
  } >"$seed/user-data"

  cloud-localds -N "$seed/network-config" "$WORK/seed.img" "$seed/user-data" "$seed/meta-data"
}
