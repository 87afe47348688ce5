# The lab (test/lab/lab) and the VM's own Azure fakes. Sourced by test/e2e/run.
# shellcheck shell=bash disable=SC2034  # globals are read by the other files of the run

LAB_CMD="$REPO_DIR/test/lab/lab"
LAB_STATE=/run/dsvm-lab
E2E_STARTED_LAB=0
E2E_FAKES_PGID=""
E2E_FAKES_ADDR=0

lab_is_up() {
  [[ -f "$LAB_STATE/lab.env" ]] && ip netns list 2>/dev/null | grep -q "^$VM_NS\b"
}

# lab_env KEY: one fact from lab.env (read as data, never sourced).
lab_env() {
  local value
  value="$(sed -n "s/^$1=//p" "$LAB_STATE/lab.env" | tail -n 1)"
  [[ -n "$value" ]] || die "lab.env has no $1"
  printf '%s\n' "$value"
}

# Uses a running lab as it is; starts one (and remembers to stop it) otherwise.
lab_ensure_up() {
  if lab_is_up; then
    log "using the lab that is already up"
  else
    log "starting the lab (test/lab/lab up)"
    E2E_STARTED_LAB=1
    "$LAB_CMD" up >"$WORK/lab-up.log" 2>&1 || { tail -n 30 "$WORK/lab-up.log" >&2; die "lab up failed"; }
  fi
  LAB_DOMAIN="$(lab_env DOMAIN)"
  LAB_REALM="$(lab_env REALM)"
  LAB_BASE_DN="$(lab_env BASE_DN)"
  LAB_STORAGE_ACCOUNT="$(lab_env STORAGE_ACCOUNT)"
  LAB_SHARE_NAME="$(lab_env SHARE_NAME)"
  LAB_SHARE_DIR="$(lab_env SHARE_DIR)"
  LAB_JOIN_USER="$(lab_env JOIN_USER)"
  LAB_JOIN_OU="$(lab_env JOIN_OU)"
  LAB_USERS_GROUP="$(lab_env USERS_GROUP)"
  LAB_ADMINS_GROUP="$(lab_env ADMINS_GROUP)"
  LAB_KV_SECRET="$(lab_env KEYVAULT_SECRET_NAME)"
  LAB_SUBSCRIPTION_ID="$(lab_env SUBSCRIPTION_ID)"
  LAB_RESOURCE_GROUP="$(lab_env RESOURCE_GROUP)"
  [[ "$(lab_env DC_IP)" == "$VM_GATEWAY_IP" ]] || die "lab DC is not at $VM_GATEWAY_IP"
}

lab_restore() {
  if [[ "$E2E_STARTED_LAB" == 1 ]]; then
    log "stopping the lab this run started"
    # down proves nothing is left behind; a leak fails the run.
    if ! "$LAB_CMD" down >"$WORK/lab-down.log" 2>&1; then
      cat "$WORK/lab-down.log" >&2
      log "lab down failed or left things behind (above)"
      return 1
    fi
  fi
}

# The VM's Azure fakes: in a namespace of their own on the lab bridge (the VM
# reaches nothing else), seeded with the lab's join password and storage key
# through a root-only file that is removed once they are up.
fakes_start() {
  local dir="$WORK/fakes"
  ip netns del "$VM_FAKES_NS" 2>/dev/null || true
  ip netns add "$VM_FAKES_NS"
  E2E_FAKES_ADDR=1
  ip -n "$VM_FAKES_NS" link set lo up
  ip -n "$VM_NS" link add "$VM_FAKES_PORT" type veth peer name eth0 netns "$VM_FAKES_NS"
  ip -n "$VM_NS" link set "$VM_FAKES_PORT" master "$VM_BRIDGE" up
  ip -n "$VM_FAKES_NS" addr add "$VM_FAKES_IP/24" dev eth0
  ip -n "$VM_FAKES_NS" link set eth0 up
  mkdir -p "$dir/state"
  chmod 0700 "$dir"
  (umask 077 && node -e '
    const fs = require("fs");
    const [lab, secret, account, sub, rg, vmName, vmId] = process.argv.slice(1);
    const read = (f) => fs.readFileSync(`${lab}/${f}`, "utf8").trim();
    process.stdout.write(JSON.stringify({
      identities: [{ clientId: "6f1f3c55-0e2a-4d5e-9f57-2f1a8f0c0e20", systemAssigned: true,
                     secrets: "*", storageAccounts: "*" }],
      secrets: { [secret]: read("join-password") },
      storageAccounts: [{ name: account, subscriptionId: sub, resourceGroup: rg,
                          keys: [read("storage-key")], shares: { workspace: { quotaGiB: 100 } } }],
      vm: { compute: { name: vmName, vmId, vmScaleSetName: "dsvmpool", subscriptionId: sub,
                       resourceGroupName: rg, location: "westeurope" } },
    }));' "$LAB_STATE" "$LAB_KV_SECRET" "$LAB_STORAGE_ACCOUNT" "$LAB_SUBSCRIPTION_ID" \
    "$LAB_RESOURCE_GROUP" "$VM_HOSTNAME" "$VM_UUID" >"$dir/seed.json")
  # setsid: the fakes get their own process group, which teardown ends.
  (cd "$REPO_DIR" && exec setsid ip netns exec "$VM_FAKES_NS" env -i PATH="$PATH" HOME=/root \
    "$REPO_DIR/node_modules/.bin/tsx" test/fakes/serve.ts --host "$VM_FAKES_IP" \
    --out "$dir/urls.json" --state-dir "$dir/state" \
    --files-root "$LAB_STORAGE_ACCOUNT/$LAB_SHARE_NAME=$LAB_SHARE_DIR" --seed "$dir/seed.json" \
    </dev/null >"$dir/fakes.log" 2>&1) &
  E2E_FAKES_PGID=$!
  local i
  for ((i = 0; i < 60; i++)); do
    [[ -s "$dir/urls.json" ]] && break
    kill -0 "$E2E_FAKES_PGID" 2>/dev/null || break
    sleep 0.5
  done
  rm -f "$dir/seed.json"
  [[ -s "$dir/urls.json" ]] || { tail -n 20 "$dir/fakes.log" >&2; die "the VM's Azure fakes did not start"; }
  log "fakes up: $(tr -d '\n ' <"$dir/urls.json" | cut -c1-200)"
}

fakes_stop() {
  fakes_stop_process
  if [[ "$E2E_FAKES_ADDR" == 1 ]]; then
    ip netns del "$VM_FAKES_NS" 2>/dev/null || true
    E2E_FAKES_ADDR=0
  fi
}

fakes_stop_process() {
  [[ -n "$E2E_FAKES_PGID" ]] || return 0
  kill -TERM -- "-$E2E_FAKES_PGID" 2>/dev/null || true
  local i
  for ((i = 0; i < 20; i++)); do
    kill -0 -- "-$E2E_FAKES_PGID" 2>/dev/null || { E2E_FAKES_PGID=""; return 0; }
    sleep 0.25
  done
  kill -KILL -- "-$E2E_FAKES_PGID" 2>/dev/null || true
  E2E_FAKES_PGID=""
}
