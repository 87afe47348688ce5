# The assertions of the VM-image tier. Each check is one TAP line; a failed
# check never stops the run, so one run reports everything at once.
# Sourced by test/e2e/run.
# shellcheck shell=bash disable=SC2034  # globals are read by the other files of the run

E2E_HEALTHY_ONCE=0     # did /health ever say Healthy? (later waits are short if not)
E2E_FROZEN=0           # smbd frozen right now (teardown thaws it)
E2E_LOGIN_OK_SECS=""   # alice's ssh login time with a healthy share
AD_COMPUTER=""         # sAMAccountName without the $
AD_BEFORE=""           # objectGUID/whenCreated/pwdLastSet after the first boot
KEYTAB_BEFORE=""       # "NAME KVNO" after the first boot

# --- probes (functions, so `check` can run them in this shell) -------------

# /health's ApplicationHealthState, or what went wrong.
vm_health_state() {
  local body
  body="$(E2E_SSH_TIMEOUT=20 vm_ssh "curl -sS --max-time 3 http://127.0.0.1:$E2E_HEALTH_PORT/health" 2>&1)" || {
    printf 'no answer: %s\n' "$(printf '%s' "$body" | head -n 2)"
    return 1
  }
  printf '%s' "$body" | node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      try {
        const h = JSON.parse(s);
        // A failed first boot is final until someone restarts the agent.
        const fb = h.firstBoot && h.firstBoot.state === "failed" ? " (first boot failed)" : "";
        process.stdout.write(String(h.ApplicationHealthState) + fb);
      } catch { process.stdout.write("unparsable: " + s.slice(0, 200)); process.exit(1); } });'
}

# wait_health STATE SECONDS. Gives up early on Healthy once first boot has
# said "failed" for a minute: the daemon does not run it again by itself
# (its journal says to restart it), so waiting longer only costs TCG time.
wait_health() {
  local want="$1" deadline=$((SECONDS + $2)) state="" failed_since=""
  while :; do
    if state="$(vm_health_state 2>&1)" && [[ "${state% (first boot failed)}" == "$want" ]]; then return 0; fi
    if [[ "$want" == Healthy && "$state" == *"(first boot failed)" ]]; then
      failed_since="${failed_since:-$SECONDS}"
      ((SECONDS - failed_since < 60)) || break
    else
      failed_since=""
    fi
    ((SECONDS < deadline)) || break
    vm_running || break
    sleep 5
  done
  echo "health: want $want after ${2}s, last answer: $state"
  E2E_SSH_TIMEOUT=20 vm_ssh 'systemctl show dsvm-agent -p ActiveState -p SubState -p StatusText -p NRestarts;
    journalctl -u dsvm-agent --no-pager -n 12 -o cat' 2>&1 | tail -n 18
  return 1
}

# Waits are long only once the daemon has shown it can get there at all.
patience() { if [[ "$E2E_HEALTHY_ONCE" == 1 ]]; then echo "$1"; else echo "$2"; fi; }

# "NAME KVNO" of the machine account in the VM's keytab.
vm_keytab_principal() {
  vm_ssh 'klist -k /etc/krb5.keytab 2>/dev/null' |
    awk '$2 ~ /\$@/ { sub(/\$@.*/, "", $2); print $2, $1; exit }'
}

# The computer object's identity-bearing attributes, from the DC's database.
ad_computer_attrs() {
  "$LAB_CMD" dc-exec -- ldbsearch -H "$LAB_STATE/dc/samba/private/sam.ldb" \
    "(&(objectClass=computer)(sAMAccountName=$1\$))" objectGUID whenCreated pwdLastSet distinguishedName 2>/dev/null |
    grep -E '^(objectGUID|whenCreated|pwdLastSet|distinguishedName):' | sort
}

# The CIFS mount at /data/workspace (touching it first, in case the agent
# mounts on demand through an automount unit, which stacks cifs over autofs).
mount_json() {
  E2E_SSH_TIMEOUT=30 vm_ssh "timeout 20 ls /data/workspace >/dev/null 2>&1;
    findmnt -J -t cifs --mountpoint /data/workspace -o TARGET,SOURCE,FSTYPE,OPTIONS"
}

share_mounted_cifs() {
  local json
  json="$(mount_json)" || { echo "nothing mounted at /data/workspace"; return 1; }
  printf '%s' "$json" | node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const fs = JSON.parse(s).filesystems?.[0];
      if (!fs || fs.fstype !== "cifs") { console.log("not a cifs mount:", JSON.stringify(fs)); process.exit(1); } });'
}

# The live kernel mount carries what the agent configured (its mount unit or
# fstab line, as systemd sees it), is SMB 3.x, and is not world-writable.
mount_has_agent_options() {
  local live wanted
  live="$(mount_json)" || { echo "nothing mounted at /data/workspace"; return 1; }
  wanted="$(vm_ssh 'systemctl cat "$(systemd-escape -p --suffix=mount /data/workspace)" 2>/dev/null |
    sed -n "s/^Options=//p" | tail -n 1')" || true
  [[ -n "$wanted" ]] || { echo "no mount unit or fstab entry for /data/workspace"; return 1; }
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
    // Options for mount.cifs or systemd only; the kernel never lists them.
    const userspaceOnly = /^(credentials|cred|_netdev|nofail|noauto|auto|defaults|users?|x-systemd\..*|x-.*|username|password2?|pass|comment)(=|$)/;
    for (const o of wanted.split(",").map((x) => x.trim()).filter(Boolean)) {
      if (userspaceOnly.test(o) || live.includes(o)) continue;
      // Applied, but listed in /proc/mounts only by newer kernels (6.12 of
      // trixie lists it; 5.10 of bullseye and 6.1 of bookworm do not).
      if (["nosharesock"].includes(o)) continue;
      const [k, v] = o.split("=");
      if (k === "actimeo" && live.includes(`acregmax=${v}`) && live.includes(`acdirmax=${v}`)) continue;
      const other = live.find((l) => l.startsWith(`${k}=`));
      problems.push(other ? `${o} configured, kernel has ${other}` : `${o} configured, missing from the kernel mount`);
    }
    if (problems.length) { console.log([...problems, `live: ${fs.options}`, `configured: ${wanted}`].join("\n")); process.exit(1); }
  ' "$live" "$wanted" "$LAB_STORAGE_ACCOUNT.file.$LAB_DOMAIN" "$LAB_SHARE_NAME"
}

file_roundtrip() {
  local name="e2e-$RUN_ID.txt" content="written in the VM by run $RUN_ID"
  E2E_SSH_TIMEOUT=30 vm_ssh "printf '%s\n' '$content' > /data/workspace/$name && sync" || { echo "write in the VM failed"; return 1; }
  local got
  got="$(cat "$LAB_SHARE_DIR/$name" 2>&1)"
  rm -f "$LAB_SHARE_DIR/$name"
  [[ "$got" == "$content" ]] || { echo "host $LAB_SHARE_DIR/$name: $got"; return 1; }
}

key_leak_scan() {
  vm_ssh 'cat >/run/e2e-leak-scan.sh' <"$E2E_DIR/lib/vm-leak-scan.sh" || return 1
  vm_ssh 'bash /run/e2e-leak-scan.sh; rc=$?; rm -f /run/e2e-leak-scan.sh; exit $rc' <"$LAB_STATE/storage-key"
}

alice_session() {
  alice_login 'set -e; id -un; readlink ~/notebooks/remote; test -d ~/notebooks/remote/ && echo "remote: reachable"'
}

alice_login() { vm_ssh_password alice "$LAB_STATE/passwords/alice" "$@"; }

alice_link_ok() {
  local target
  target="$(vm_ssh 'readlink "$(getent passwd alice | cut -d: -f6)/notebooks/remote"')" || { echo "no link"; return 1; }
  [[ "$target" == /data/workspace/alice/notebooks ]] || { echo "link points to '$target'"; return 1; }
}

alice_share_folder_ok() {
  [[ -d "$LAB_SHARE_DIR/alice/notebooks" ]] || { echo "no $LAB_SHARE_DIR/alice/notebooks on the share server"; ls -la "$LAB_SHARE_DIR" | head; return 1; }
  E2E_SSH_TIMEOUT=30 vm_ssh 'test -d /data/workspace/alice/notebooks' || { echo "not visible in the VM"; return 1; }
}

# Seconds (two decimals) an ssh login of alice takes, end to end. On
# failure: the time, ssh's own words and the VM's view of the login.
time_alice_login() {
  local t0 t1 out rc secs
  t0=$EPOCHREALTIME
  out="$(E2E_SSH_TIMEOUT=90 alice_login true 2>&1)" && rc=0 || rc=$?
  t1=$EPOCHREALTIME
  secs="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')"
  if ((rc == 0)); then printf '%s\n' "$secs"; return 0; fi
  printf 'login failed (exit %s after %ss): %s\n' "$rc" "$secs" "$(printf '%s' "$out" | tail -n 3)"
  E2E_SSH_TIMEOUT=20 vm_ssh 'journalctl --no-pager -o short-monotonic --since "-3min" -u ssh -t sshd -t dsvm-agent | tail -n 12
    sssctl domain-status '"$LAB_DOMAIN"' 2>&1 | head -n 8
    tail -n 25 /var/log/sssd/krb5_child.log /var/log/sssd/sssd_'"$LAB_DOMAIN"'.log /var/log/sssd/sssd_pam.log 2>/dev/null' 2>&1
  return 1
}

unit_active_with_status() {
  vm_ssh 'test "$(systemctl show dsvm-agent -p ActiveState --value)" = active || { systemctl status dsvm-agent --no-pager | head -n 15; exit 1; }
    s=$(systemctl show dsvm-agent -p StatusText --value); echo "StatusText=$s"; test -n "$s"'
}

# The daemon runs on the packaged runtime with the unit's memory settings,
# and stays under 80 MB resident after first boot and a share-quota check:
# both call Azure (Key Vault, ARM, Files REST), through child processes, so
# the SDKs never stay loaded in the daemon (src/agent/azure/child.ts).
# The IMDS guard (azure.imdsAccess, on here: the join password and the
# storage key come through the managed identity): root gets a token from the
# VM's IMDS fake at the configured address, any other user is reset at once.
imds_guard_in_vm() {
  vm_ssh 'imds=$(sed -n "s/^ *imdsEndpoint: *//p" /etc/dsvm-agent/config.yaml | head -n 1)
    [ -n "$imds" ] || { echo "no azure.imdsEndpoint in the config"; exit 1; }
    url="$imds/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net"
    nft list table inet dsvm_agent | grep -q "reject with tcp reset" || { echo "no dsvm_agent table with a reset rule:"; nft list ruleset; exit 1; }
    code=$(curl -s -o /dev/null -w "%{http_code}" --max-time 10 -H "Metadata: true" "$url"); echo "root: HTTP $code"
    [ "$code" = 200 ] || exit 1
    start=$(date +%s%N)
    if setpriv --reuid=65534 --regid=65534 --clear-groups -- curl -s -o /dev/null --max-time 10 -H "Metadata: true" "$url"; then
      echo "uid 65534 got an answer from IMDS"; exit 1
    fi
    ms=$(( ($(date +%s%N) - start) / 1000000 )); echo "uid 65534 refused in ${ms} ms"
    [ "$ms" -lt 5000 ]'
}

daemon_runtime_and_rss() {
  vm_ssh 'pid=$(systemctl show dsvm-agent -p MainPID --value)
    [ "${pid:-0}" -gt 0 ] || { echo "no main PID"; exit 1; }
    cmd=$(tr "\0" " " < /proc/$pid/cmdline); echo "cmdline: $cmd"
    case "$cmd" in "/usr/lib/dsvm-agent/node --max-semi-space-size=1 --no-opt --no-maglev --memory-saver-mode /usr/lib/dsvm-agent/dist/cli.mjs run"*) ;; *) exit 1 ;; esac
    tr "\0" "\n" < /proc/$pid/environ | grep -qx MALLOC_ARENA_MAX=2 || { echo "MALLOC_ARENA_MAX=2 not in its environment"; exit 1; }
    for i in $(seq 36); do
      quota=$(curl -sS --max-time 3 http://127.0.0.1:'"$E2E_HEALTH_PORT"'/health | python3 -c "import json,sys; c=[c for c in json.load(sys.stdin)[\"checks\"] if c[\"id\"]==\"share-quota\"][0]; print(c[\"state\"], c[\"lastRunAt\"] is not None, c[\"reason\"])")
      case "$quota" in "ok True "*) break ;; esac
      sleep 5
    done
    echo "share-quota: $quota"
    case "$quota" in "ok True "*) ;; *) echo "the share-quota check (Files REST) has not run ok"; exit 1 ;; esac
    rss=$(awk "/^VmRSS:/ {print \$2}" /proc/$pid/status); echo "VmRSS ${rss} kB (after first boot and a share-quota check)"
    [ "$rss" -lt 81920 ] || { echo "above the 80 MB target"; exit 1; }
    echo "$((rss / 1024)) MB"'
}

no_second_join() {
  local now after
  now="$(vm_keytab_principal 2>/dev/null || true)"
  after="$(ad_computer_attrs "$AD_COMPUTER" || true)"
  [[ "$now" == "$KEYTAB_BEFORE" ]] || { echo "keytab was '$KEYTAB_BEFORE', now '$now'"; return 1; }
  [[ "$after" == "$AD_BEFORE" ]] || { printf 'AD object changed:\nbefore:\n%s\nafter:\n%s\n' "$AD_BEFORE" "$after"; return 1; }
}

# The unit's sandbox (every hardening line of its [Service] section, applied
# to a transient unit) against what the agent does under systemd: a mount PID
# 1 makes is visible inside (the namespace is a slave of the host's); the
# agent's own unmount, handed to PID 1 with systemd-run as share-mount does,
# detaches it for the whole system; mount.cifs is not refused for missing
# capabilities.
unit_sandbox_allows_mounts() {
  vm_ssh 'set -u
    props=()
    while IFS= read -r line; do props+=(-p "$line"); done < <(
      sed -n "/^\[Service\]/,/^\[/p" /lib/systemd/system/dsvm-agent.service |
      grep -E "^(NoNewPrivileges|RestrictSUIDSGID|RestrictNamespaces|LockPersonality|RestrictRealtime|SystemCallArchitectures|RestrictAddressFamilies|SystemCallFilter|SystemCallErrorNumber|CapabilityBoundingSet|KillMode|DevicePolicy|ProtectClock|ProtectKernelTunables|ProtectKernelModules|ProtectKernelLogs|ProtectControlGroups)=")
    [ "${#props[@]}" -ge 17 ] || { echo "hardening lines not found in the unit (${#props[@]})"; exit 1; }
    mkdir -p /mnt/e2e-probe
    mount -t tmpfs e2e-probe /mnt/e2e-probe
    inside=$(systemd-run --quiet --wait --collect --pipe "${props[@]}" findmnt -n -o FSTYPE /mnt/e2e-probe)
    [ "$inside" = tmpfs ] || { echo "a mount PID 1 sees is not visible in the sandbox ($inside)"; exit 1; }
    systemd-run --quiet --wait --collect --pipe "${props[@]}" \
      systemd-run --quiet --wait --pipe --collect --service-type=exec -p RuntimeMaxSec=25 -- umount /mnt/e2e-probe ||
      { echo "systemd-run umount from the sandbox failed"; exit 1; }
    if findmnt -n /mnt/e2e-probe >/dev/null; then echo "the unmount from the sandbox did not reach the host"; umount /mnt/e2e-probe; exit 1; fi
    out=$(systemd-run --quiet --wait --collect --pipe "${props[@]}" \
      mount -t cifs //10.77.0.3/e2e-no-such-share /mnt/e2e-probe -o username=nobody,password=x,vers=3.0 2>&1)
    echo "mount.cifs in the sandbox: $out"
    rmdir /mnt/e2e-probe
    ! printf "%s" "$out" | grep -qiE "capabilit|Operation not permitted|EPERM"'
}

# What the VM runs, as TAP comments: the agent (and the runtime it names),
# the OS release and the versions of the tools whose differences between
# suites matter to the agent.
vm_versions() {
  local out
  out="$(E2E_SSH_TIMEOUT=60 vm_ssh 'echo "dsvm-agent version: $(dsvm-agent version 2>&1 | tr "\n" " ")"
    . /etc/os-release; echo "os-release: $PRETTY_NAME, VERSION=${VERSION:-?}"
    echo "kernel: $(uname -r)"
    dpkg-query -W -f "\${Package} \${Version}\n" adcli sssd-common realmd systemd cloud-init openssh-server cifs-utils libpam-runtime libc6 2>&1' 2>&1)" ||
    out="versions: ssh failed: $out"
  while IFS= read -r line; do note "$line"; done <<<"$out"
}

# deb_depends_cover_base DEB: every package the base image carries for the
# agent alone is named in the .deb's Depends (any alternative counts).
deb_depends_cover_base() {
  local deps missing=() p
  deps="$(dpkg-deb -f "$1" Depends | tr ',|' '\n\n' | sed -E 's/^ *//; s/[ (:].*//' | sort -u)"
  for p in "${BASE_PACKAGES_FOR_DEB[@]}"; do
    grep -qxF "$p" <<<"$deps" || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  echo "not in Depends: ${missing[*]} (the base image pre-installs them because the agent runs them)"
  echo "Depends: $(dpkg-deb -f "$1" Depends)"
  return 1
}

# --- phases ---------------------------------------------------------------

checks_image() {
  check "image build: the .deb's Depends name what the base image pre-installs for the agent (${BASE_PACKAGES_FOR_DEB[*]})" \
    deb_depends_cover_base "$1"
  if grep -q '^== dsvm-agent deprovision$' "$WORK/image.log"; then
    if grep -q '^deprovision: exit 0$' "$WORK/image.log"; then
      pass "image build: dsvm-agent deprovision succeeds in the chroot before capture"
    else
      fail "image build: dsvm-agent deprovision succeeds in the chroot before capture" \
        "$(sed -n '/^== dsvm-agent deprovision$/,$p' "$WORK/image.log")"
    fi
  else
    fail "image build: dsvm-agent deprovision succeeds in the chroot before capture" \
      "this build has no \`dsvm-agent deprovision\` (see $WORK/image.log)"
  fi
}

checks_first_boot() {
  check "cloud-init finished without errors" \
    vm_ssh_ro 'timeout 300 cloud-init status --wait >/dev/null; cloud-init status --long; cloud-init status | grep -q "status: done"'

  check "systemd loaded the packaged unit: notify, watchdog 30s, restart on failure, enabled" \
    vm_ssh_ro 'p=$(systemctl show dsvm-agent -p Type -p WatchdogUSec -p Restart -p UnitFileState -p FragmentPath); echo "$p"
      for want in Type=notify WatchdogUSec=30s Restart=on-failure UnitFileState=enabled; do
        printf "%s\n" "$p" | grep -qx "$want" || exit 1; done'

  # The join restarts sshd (its drop-in allows password logins): wait it out.
  vm_wait_ssh 120 || true
  check "cloud-init ran the agent (runcmd: config check, then enable --now)" \
    vm_ssh_ro 'grep -q "dsvm-agent config check" /var/lib/cloud/instance/scripts/runcmd || exit 1
      grep -E "scripts-user|runcmd" /var/log/cloud-init.log | grep -iE "fail|error" && exit 1
      test "$(systemctl show dsvm-agent -p ActiveEnterTimestampMonotonic --value)" != 0 ||
        { echo "the unit never became active"; systemctl status dsvm-agent --no-pager | head -n 12; exit 1; }'

  vm_wait_ssh 120 || true
  check "the PAM profile is active: pam_exec dsvm-agent line in common-session" \
    vm_ssh_ro 'grep -E "pam_exec\.so.*dsvm-agent" /etc/pam.d/common-session'

  # First boot runs in the daemon's background: Initializing until done.
  check "first boot completes: /health says Healthy" wait_health Healthy 420
  E2E_HEALTHY_ONCE=$CHECK_OK

  check "dsvm-agent is active and reports a StatusText" unit_active_with_status
  # After first boot, not during it: the probe mounts and unmounts, so it is
  # not retried, and the join's sshd restart would cut its ssh session.
  check "the unit's hardening: PID 1's mounts reach the daemon, its unmounts reach everyone, mount.cifs keeps its capabilities" unit_sandbox_allows_mounts
  bail_if_vm_gone
  local out name="the daemon runs with the unit's runtime settings, under 80 MB after first boot and a share-quota check"
  if out="$(daemon_runtime_and_rss 2>&1)"; then pass "$name (VmRSS $(tail -n 1 <<<"$out"))"; else fail "$name" "$out"; fi
  check "core dumps are off for the daemon: systemctl show says LimitCORE=0" \
    vm_ssh_ro "systemctl show -p LimitCORE dsvm-agent | grep -qx 'LimitCORE=0'"
  check "the IMDS guard: root gets a token, a non-root user is refused at once" imds_guard_in_vm
  check "realm list shows $LAB_DOMAIN" vm_ssh_ro "realm list --name-only | grep -qxi '$LAB_DOMAIN'"

  local principal
  principal="$(vm_keytab_principal 2>/dev/null || true)"
  if [[ -n "$principal" ]]; then
    AD_COMPUTER="${principal% *}"
    KEYTAB_BEFORE="$principal"
    AD_BEFORE="$(ad_computer_attrs "$AD_COMPUTER" || true)"
    if [[ "$AD_BEFORE" == *objectGUID* ]]; then
      pass "the computer object $AD_COMPUTER\$ exists in AD (keytab kvno ${principal#* })"
    else
      fail "the computer object exists in AD" "the keytab names $AD_COMPUTER\$, the DC has no such computer"
    fi
  else
    fail "the computer object exists in AD" "no machine principal in the VM's /etc/krb5.keytab"
  fi

  check "the share is mounted by the kernel CIFS client at /data/workspace" share_mounted_cifs
  check "the kernel mount carries the agent's options (SMB 3.x, not world-writable)" mount_has_agent_options
  check "a file written in the VM appears in the lab's share folder on the host" file_roundtrip
  check "the storage key is in no file, journal, argv or environment but the root-only credentials file" key_leak_scan

  # The hub before any ssh login of alice (lib/jupyterhub.sh says why).
  checks_jupyterhub

  local secs
  # sssd logs at debug level from here, so a failed login says why.
  E2E_SSH_TIMEOUT=30 vm_ssh 'sssctl debug-level 0x0ff0 >/dev/null 2>&1 || true' || true
  if secs="$(time_alice_login)"; then
    E2E_LOGIN_OK_SECS="$secs"
    pass "ssh alice@VM with her password works (${secs}s)"
  else
    fail "ssh alice@VM with her password works" "$secs"
  fi
  check "alice's session sees ~/notebooks/remote" alice_session
  check "/data/workspace/alice/notebooks exists on the share" alice_share_folder_ok
  check "~alice/notebooks/remote links to /data/workspace/alice/notebooks" alice_link_ok
}

checks_after_reboot() {
  check "after reboot: the share is mounted again" retry_until "$(patience 180 60)" 10 share_mounted_cifs
  check "after reboot: /health says Healthy" wait_health Healthy "$(patience 300 30)"
  if [[ -n "$AD_COMPUTER" ]]; then
    check "after reboot: no second join (AD object and keytab unchanged)" no_second_join
  else
    skip_check "after reboot: no second join (AD object and keytab unchanged)" "no join after the first boot"
  fi
  # The hub comes back by itself; under TCG its start is a minute of CPU,
  # which the logins timed next would otherwise share.
  if suite_has_jupyterhub "$E2E_SUITE"; then
    check "after reboot: JupyterHub serves its login page again" hub_serves_login
  fi
}

checks_frozen_share() {
  local bound_ms=$((E2E_LOGIN_TIMEOUT_MS + 1500)) secs base
  # The healthy login is timed again right before the freeze: after the
  # reboot, with the same caches and the same work in the VM, so that the
  # difference is the share's alone (alice's first login, before the reboot,
  # ran with other caches and other background work).
  if base="$(time_alice_login)"; then E2E_LOGIN_OK_SECS="$base"; fi
  "$LAB_CMD" files-freeze
  E2E_FROZEN=1
  # A login bound is only meaningful against this machine's own ssh cost:
  # the frozen-share login may take at most loginTimeoutMs (+1.5 s for TCG
  # noise) longer than a login with the share healthy.
  if secs="$(time_alice_login)"; then
    if [[ -n "$E2E_LOGIN_OK_SECS" ]] &&
      awk -v f="$secs" -v ok="$E2E_LOGIN_OK_SECS" -v b="$bound_ms" 'BEGIN { exit !((f - ok) * 1000 <= b) }'; then
      pass "smbd frozen: a new ssh login completes within the login bound (${secs}s vs ${E2E_LOGIN_OK_SECS}s healthy)"
    else
      fail "smbd frozen: a new ssh login completes within the login bound" \
        "frozen ${secs}s, healthy ${E2E_LOGIN_OK_SECS:-never}s, allowed +${bound_ms}ms"
    fi
  else
    fail "smbd frozen: a new ssh login completes within the login bound" "$secs"
  fi
  check "smbd frozen: /health turns Unhealthy" wait_health Unhealthy "$(patience 120 20)"
  "$LAB_CMD" files-thaw
  E2E_FROZEN=0
  check "smbd thawed: /health recovers to Healthy" wait_health Healthy "$(patience 240 20)"
  check "smbd thawed: the share answers again" retry_until 60 5 vm_ssh 'timeout 10 ls /data/workspace >/dev/null'
}

watchdog_restarts() {
  local pid1 pid2 deadline
  pid1="$(vm_ssh 'systemctl show dsvm-agent -p MainPID --value')"
  [[ "$pid1" =~ ^[1-9][0-9]*$ ]] || { echo "no running daemon (MainPID=$pid1)"; return 1; }
  vm_ssh "kill -STOP $pid1"
  # WatchdogSec=30, then SIGABRT, TimeoutAbortSec, RestartSec=5: ~50 s.
  deadline=$((SECONDS + 120))
  while ((SECONDS < deadline)); do
    sleep 5
    vm_running || return 1
    pid2="$(vm_ssh 'test "$(systemctl show dsvm-agent -p ActiveState --value)" = active && systemctl show dsvm-agent -p MainPID --value' 2>/dev/null || true)"
    if [[ "$pid2" =~ ^[1-9][0-9]*$ && "$pid2" != "$pid1" ]]; then
      vm_ssh 'journalctl -u dsvm-agent --no-pager -o cat | grep -i "watchdog timeout"' || { echo "restarted, but not by the watchdog"; return 1; }
      return 0
    fi
  done
  echo "daemon $pid1 stopped 120 s ago, no restart"
  vm_ssh "kill -CONT $pid1" || true
  return 1
}

checks_watchdog() {
  check "watchdog: a daemon frozen with SIGSTOP is restarted by systemd after WatchdogSec" watchdog_restarts
  check "watchdog: the restarted daemon is Healthy again" wait_health Healthy "$(patience 180 20)"
}

# Image capture from a VM that ran: `dsvm-agent deprovision --leave-domain`
# with the daemon running stops it (the unit stays enabled for the image's
# first boot), removes the computer account, the keytab, the share's
# credentials and mount, and the state; a second run finds nothing; plan then
# shows every first-boot task pending.
# Run by hand over ssh, the CLI needs the fakes' CA the unit gets from its
# drop-in (the Key Vault fake holds the join password --leave-domain uses).
VM_AGENT="NODE_EXTRA_CA_CERTS=/etc/dsvm-agent/e2e-fakes-ca.pem dsvm-agent"

deprovision_live() {
  vm_ssh "$VM_AGENT deprovision --leave-domain --yes </dev/null" || return 1
  vm_ssh 'set -u
    [ "$(systemctl is-active dsvm-agent)" != active ] || { echo "the daemon still runs"; exit 1; }
    [ "$(systemctl is-enabled dsvm-agent)" = enabled ] || { echo "the unit is no longer enabled"; exit 1; }
    left=$(ls -d /etc/krb5.keytab /etc/smbcredentials/*.cred /var/lib/dsvm-agent/state.json /etc/sssd/sssd.conf 2>/dev/null)
    [ -z "$left" ] || { echo "left behind: $left"; exit 1; }
    ! findmnt -n /data/workspace >/dev/null || { echo "/data/workspace is still mounted"; exit 1; }' || return 1
  local attrs
  attrs="$(ad_computer_attrs "$AD_COMPUTER" || true)"
  [[ -z "$attrs" ]] || { printf 'the computer object %s$ is still in AD:\n%s\n' "$AD_COMPUTER" "$attrs"; return 1; }
}

deprovision_again_noop() {
  local before after out
  before="$(vm_ssh "find /etc /var/lib/dsvm-agent -xdev -printf '%p %m %s %T@\n' 2>/dev/null | sort | md5sum")"
  out="$(vm_ssh "$VM_AGENT deprovision --yes </dev/null")" || { echo "$out"; return 1; }
  after="$(vm_ssh "find /etc /var/lib/dsvm-agent -xdev -printf '%p %m %s %T@\n' 2>/dev/null | sort | md5sum")"
  grep -q 'nothing was left to remove' <<<"$out" || { echo "$out"; return 1; }
  [[ "$before" == "$after" ]] || { echo "the second run changed /etc or the state"; echo "$out"; return 1; }
}

plan_all_pending() {
  vm_ssh "$VM_AGENT plan --json" | python3 -c '
import json, sys
tasks = [t for t in json.load(sys.stdin)["tasks"] if t["status"] != "skipped"]
ids = [t["id"] for t in tasks]
assert len(tasks) >= 3, f"tasks that run: {ids}"
bad = [t["id"] for t in tasks if t.get("pending") is not True]
assert not bad, f"not pending: {bad}"
print("pending:", ", ".join(ids))'
}

checks_deprovision() {
  check "deprovision --leave-domain on the running VM: daemon stopped (unit still enabled), computer account, keytab, credentials, mount and state gone" deprovision_live
  check "deprovision again: nothing left to remove, nothing changed" deprovision_again_noop
  check "after deprovision, plan shows every first-boot task pending" plan_all_pending
}
