# The assertions of the VM-image tier (issue: packaging and the VM-image
# end-to-end test). Each check is one TAP line. Sourced by test/e2e/run.
# shellcheck shell=bash

E2E_HEALTHY_ONCE=0     # did /health ever answer Healthy? (shortens later waits if not)
E2E_FROZEN=0           # smbd frozen right now (teardown thaws it)
E2E_LOGIN_OK_SECS=""   # alice's ssh login time with a healthy share
AD_COMPUTER=""         # sAMAccountName without the $
AD_BEFORE=""           # whenCreated/pwdLastSet/objectGUID after first boot
KEYTAB_BEFORE=""

# --- small probes ---------------------------------------------------------

# /health's ApplicationHealthState, or a description of what went wrong.
vm_health_state() {
  local body
  body="$(vm_ssh "curl -sS --max-time 3 http://127.0.0.1:$E2E_HEALTH_PORT/health" 2>&1)" || {
    printf 'no answer: %s\n' "$body" | head -n 3
    return 1
  }
  printf '%s' "$body" | node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      try { const v = JSON.parse(s).ApplicationHealthState; process.stdout.write(String(v)); }
      catch { process.stdout.write("unparsable: " + s.slice(0, 200)); process.exit(1); } });'
}

health_is() { [[ "$(vm_health_state 2>/dev/null)" == "$1" ]]; }

# wait_health STATE SECONDS: passes when /health says STATE in time.
wait_health() {
  local want="$1" deadline=$((SECONDS + $2)) state=""
  while :; do
    state="$(vm_health_state 2>&1)" && [[ "$state" == "$want" ]] && return 0
    ((SECONDS < deadline)) || break
    sleep 5
  done
  echo "health: want $want, last answer: $state"
  vm_ssh "systemctl show dsvm-agent -p ActiveState -p SubState -p StatusText -p NRestarts; journalctl -u dsvm-agent --no-pager -n 15 -o cat" 2>&1 | tail -n 20
  return 1
}

# Health waits are long only while the daemon has shown it can get there.
health_patience() { if [[ "$E2E_HEALTHY_ONCE" == 1 ]]; then echo "$1"; else echo "$2"; fi; }

unit_prop() { vm_ssh "systemctl show dsvm-agent -p $1 --value"; }

# "NAME KVNO" of the machine account in the VM's keytab.
vm_keytab_principal() {
  vm_ssh 'klist -k /etc/krb5.keytab 2>/dev/null' |
    awk '$2 ~ /\$@/ { sub(/\$@.*/, "", $2); print $2, $1; exit }'
}

# The computer object's identity-bearing attributes, straight from the DC.
ad_computer_attrs() {
  "$LAB_CMD" dc-exec -- ldbsearch -H "$LAB_STATE/dc/samba/private/sam.ldb" \
    "(&(objectClass=computer)(sAMAccountName=$1\$))" objectGUID whenCreated pwdLastSet distinguishedName 2>/dev/null |
    grep -E '^(objectGUID|whenCreated|pwdLastSet|distinguishedName):' | sort
}

mount_json() { vm_ssh "findmnt -J -T /data/workspace -o TARGET,SOURCE,FSTYPE,OPTIONS"; }

share_mounted_cifs() {
  local json
  json="$(mount_json)" || return 1
  printf '%s' "$json" | node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const fs = JSON.parse(s).filesystems?.[0];
      if (!fs || fs.target !== "/data/workspace" || fs.fstype !== "cifs") {
        console.log("not a cifs mount at /data/workspace:", JSON.stringify(fs)); process.exit(1); } });'
}

# The live kernel mount carries the options the agent configured (its mount
# unit or fstab line, as systemd sees it), SMB 3.x, and no world-writable modes.
check_mount_options() {
  local live wanted
  live="$(mount_json)" || { echo "findmnt failed"; return 1; }
  wanted="$(vm_ssh 'systemctl cat "$(systemd-escape -p --suffix=mount /data/workspace)" 2>/dev/null | sed -n "s/^Options=//p" | tail -n 1')" || true
  [[ -n "$wanted" ]] || { echo "no mount unit or fstab entry for /data/workspace (systemctl cat data-workspace.mount)"; return 1; }
  node -e '
    const [liveJson, wanted, host, share] = process.argv.slice(1);
    const fs = JSON.parse(liveJson).filesystems[0];
    const live = fs.options.split(",");
    const problems = [];
    const want = `//${host}/${share}`.toLowerCase();
    if (fs.source.toLowerCase() !== want) problems.push(`source ${fs.source}, want ${want}`);
    if (fs.fstype !== "cifs") problems.push(`fstype ${fs.fstype}`);
    const vers = live.find((o) => o.startsWith("vers="));
    if (!vers || !/^vers=3/.test(vers)) problems.push(`not SMB 3.x: ${vers}`);
    for (const o of live) if (/^(dir|file)_mode=0?777$/.test(o)) problems.push(`world-writable ${o}`);
    // Options that configure userspace (mount.cifs, systemd) and never show
    // in the kernel options.
    const userspaceOnly = /^(credentials|cred|_netdev|nofail|noauto|auto|defaults|user|users|x-systemd\..*|x-.*|username|user|password|password2|pass|comment)(=|$)/;
    for (const o of wanted.split(",").map((s) => s.trim()).filter(Boolean)) {
      if (userspaceOnly.test(o)) continue;
      if (live.includes(o)) continue;
      const [k, v] = o.split("=");
      if (k === "actimeo" && live.includes(`acregmax=${v}`) && live.includes(`acdirmax=${v}`)) continue;
      if (k === "vers" && live.includes(`vers=${v === "3" ? "3.0" : v}`)) continue;
      const other = live.find((l) => l.startsWith(`${k}=`));
      problems.push(other ? `${o} configured, kernel has ${other}` : `${o} configured, missing in the kernel mount`);
    }
    if (problems.length) { console.log(problems.join("\n")); console.log("live:", fs.options); console.log("wanted:", wanted); process.exit(1); }
  ' "$live" "$wanted" "$LAB_STORAGE_ACCOUNT.file.$LAB_DOMAIN" "$LAB_SHARE_NAME"
}

alice_login() {
  vm_ssh_password alice "$LAB_STATE/passwords/alice" "$@"
}

# Seconds (decimal) an ssh login of alice takes, end to end; fails if it does.
time_alice_login() {
  local t0 t1
  t0=$EPOCHREALTIME
  timeout 120 bash -c "$(declare -f vm_ssh_password); $(declare -p _ssh_opts VM_NS VM_IP); vm_ssh_password alice \"\$1\" true" _ \
    "$LAB_STATE/passwords/alice" >/dev/null 2>&1 || return 1
  t1=$EPOCHREALTIME
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f\n", b - a }'
}

# --- phases ---------------------------------------------------------------

checks_image() {
  if grep -q '^== dsvm-agent deprovision$' "$WORK/image.log"; then
    check "image build: dsvm-agent deprovision succeeds in the chroot before capture" \
      grep -q '^deprovision: exit 0$' "$WORK/image.log"
  else
    fail "image build: dsvm-agent deprovision succeeds in the chroot before capture" \
      "this build has no working \`dsvm-agent deprovision\` (see $WORK/image.log)"
  fi
}

checks_first_boot() {
  check "cloud-init finished without errors" \
    vm_ssh 'timeout 600 cloud-init status --wait >/dev/null; cloud-init status --long; cloud-init status | grep -q "status: done"'

  check "systemd loaded the packaged unit (notify, watchdog 30s, restart on failure)" \
    vm_ssh 'systemctl show dsvm-agent -p Type -p NotifyAccess -p WatchdogUSec -p Restart -p FragmentPath -p UnitFileState |
      tee /dev/stderr | tr "\n" " " |
      grep -E "Type=notify .*" | grep "WatchdogUSec=30s" | grep "Restart=on-failure" | grep -q "UnitFileState=enabled"'

  check "cloud-init ran the agent (runcmd: config check, enable --now)" \
    vm_ssh 'grep -q "dsvm-agent config check" /var/lib/cloud/instance/scripts/runcmd &&
      ! grep -q "Failed to run module scripts-user" /var/log/cloud-init.log &&
      test "$(systemctl show dsvm-agent -p ActiveEnterTimestampMonotonic --value)" != 0'

  check "the PAM profile is active (pam_exec line in common-session)" \
    vm_ssh 'grep -E "pam_exec\.so.*dsvm-agent" /etc/pam.d/common-session'

  # First boot runs in the background; health says Initializing until done.
  local patience=420
  if check_quiet wait_health Healthy "$patience"; then
    E2E_HEALTHY_ONCE=1
    pass "first boot completes: /health says Healthy"
  else
    fail "first boot completes: /health says Healthy" "$CHECK_OUT"
  fi

  check "dsvm-agent is active and reports a StatusText" \
    vm_ssh 'test "$(systemctl show dsvm-agent -p ActiveState --value)" = active &&
      test -n "$(systemctl show dsvm-agent -p StatusText --value)" &&
      systemctl show dsvm-agent -p StatusText'

  check "realm list shows $LAB_DOMAIN" vm_ssh "realm list --name-only | grep -qx '$LAB_DOMAIN'"

  local principal
  principal="$(vm_keytab_principal 2>/dev/null || true)"
  if [[ -n "$principal" ]]; then
    AD_COMPUTER="${principal% *}"
    KEYTAB_BEFORE="$principal"
    AD_BEFORE="$(ad_computer_attrs "$AD_COMPUTER" || true)"
    if [[ "$AD_BEFORE" == *objectGUID* ]]; then
      pass "computer object $AD_COMPUTER\$ exists in AD (keytab kvno ${principal#* })"
    else
      fail "computer object exists in AD" "keytab names $AD_COMPUTER\$ but the DC has no such computer"
    fi
    check "computer name fits NetBIOS (at most 15 characters)" test "${#AD_COMPUTER}" -le 15
  else
    fail "computer object exists in AD" "no machine principal in the VM's /etc/krb5.keytab"
    skip_check "computer name fits NetBIOS (at most 15 characters)" "no keytab"
  fi

  check "the share is mounted by the kernel CIFS client at /data/workspace" share_mounted_cifs
  check "the kernel mount carries the agent's options (SMB 3.x, no 0777)" check_mount_options

  local marker="e2e-$RUN_ID.txt"
  check "a file written in the VM appears in the lab's share folder" \
    bash -c '"$@"' _ check_file_roundtrip "$marker"

  check "the storage key is in no file, journal, argv or environment but the credentials file" \
    bash -c 'vm_ssh "cat >/run/e2e-leak-scan.sh && bash /run/e2e-leak-scan.sh" < <(cat "$1"; echo); ' _ "$E2E_DIR/lib/vm-leak-scan.sh"
}
