# The VM under test: image from the cached rootfs plus the fresh .deb, a
# NoCloud seed, qemu (TCG) on a tap device in the lab's bridge namespace, and
# ssh into it. Sourced by test/e2e/run.
# shellcheck shell=bash disable=SC2034  # globals are read by the other files of the run

VM_NS="${DSVM_E2E_NS:-dsvmlab-dc}"  # holds br0 and the DC's 10.77.0.2
VM_BRIDGE=br0
VM_TAP=dsvme2e0
VM_IP=10.77.0.20
VM_MAC=52:54:00:78:00:20
VM_GATEWAY_IP=10.77.0.2             # the DC: DNS, Kerberos, LDAP
# The VM's Azure fakes get a namespace and address of their own on the
# bridge: the VM maps a Key Vault host name to it in /etc/hosts, and mapping
# the DC's address there would turn the DC's reverse lookup (which Kerberos
# uses to name the LDAP service) into that name. A second address on the DC's
# own bridge would not do either: Samba registers every address it has in DNS.
VM_FAKES_IP=10.77.0.5
VM_FAKES_NS=dsvme2e-fakes
VM_FAKES_PORT=dsvme2e-fk
# Longer than 15 characters on purpose: the agent must derive a NetBIOS name.
VM_HOSTNAME=dsvm-e2e-image-0001
# One id per VM for the run, as on Azure (Gen2) where the SMBIOS product UUID
# and IMDS's vmId name the same VM: qemu -uuid and the IMDS fake's vmId.
VM_UUID="$(cat /proc/sys/kernel/random/uuid)"

# Copy the base rootfs, install the package as an image build would (dpkg in
# a chroot, no systemd running), then run the agent's own pre-capture
# cleanup. Prints nothing; results go to $WORK/image.log. Returns 0, or 1 when
# dpkg -i failed. With DSVM_E2E_FORCE_DEPENDS=1 a dpkg -i refused for its
# dependencies is repeated with --force-depends so the run can show what else
# fails on that suite; it then returns 3 and the image check still fails.
vm_build_rootfs() {
  local base="$1" deb="$2" rootfs="$WORK/rootfs"
  rm -rf "$rootfs"
  cp -a "$base" "$rootfs"
  install -m 0644 "$deb" "$rootfs/tmp/dsvm-agent.deb"
  # A private mount namespace: /proc and /dev for the chroot vanish with it.
  unshare -m --propagation private -- bash -euo pipefail -c '
    root=$1 force=$2 rc=0
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
      DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 "$@"; }
    echo "== dpkg -i"
    if ! in_root dpkg -i /tmp/dsvm-agent.deb; then
      [[ "$force" == 1 ]] || exit 1
      echo "== dpkg -i --force-depends (DSVM_E2E_FORCE_DEPENDS=1)"
      in_root dpkg --force-depends -i /tmp/dsvm-agent.deb
      rc=3
    fi
    rm -f "$root/tmp/dsvm-agent.deb"
    echo "== dsvm-agent version"
    in_root dsvm-agent version || echo "(dsvm-agent version failed: $?)"
    # What an image admin runs before capture (packaging/packer). Only when
    # the command exists in this build: the image is still usable without.
    if in_root dsvm-agent deprovision --help >/dev/null 2>&1; then
      echo "== dsvm-agent deprovision"
      in_root dsvm-agent deprovision --yes </dev/null && echo "deprovision: exit 0" || echo "deprovision: exit $?"
    else
      echo "== dsvm-agent deprovision: not available in this build"
    fi
    exit "$rc"
  ' _ "$rootfs" "${DSVM_E2E_FORCE_DEPENDS:-0}" >"$WORK/image.log" 2>&1
}

# ext4 image straight from the directory (no loop mount), kernel and initrd
# beside it for qemu's direct boot.
vm_make_disk() {
  local rootfs="$WORK/rootfs" size_mb
  size_mb=$(( $(du -sm --exclude=./proc "$rootfs" | cut -f1) + 1536 ))
  cp "$rootfs"/boot/vmlinuz-* "$WORK/vmlinuz"
  cp "$rootfs"/boot/initrd.img-* "$WORK/initrd.img"
  mkfs.ext4 -q -F -L root -E root_owner=0:0 -d "$rootfs" "$WORK/root.raw" "${size_mb}M" >>"$WORK/image.log"
  rm -rf "$rootfs"
  # One overlay per VM instance: the reboot check boots the same disk again.
  qemu-img create -q -f qcow2 -b "$WORK/root.raw" -F raw "$WORK/overlay.qcow2"
}

vm_tap_up() {
  ip -n "$VM_NS" link show "$VM_BRIDGE" >/dev/null 2>&1 || die "no bridge $VM_BRIDGE in namespace $VM_NS"
  ip -n "$VM_NS" tuntap add dev "$VM_TAP" mode tap
  ip -n "$VM_NS" link set "$VM_TAP" master "$VM_BRIDGE" up
}

vm_tap_down() {
  ip -n "$VM_NS" link del "$VM_TAP" 2>/dev/null || true
}

# Boots the VM in the background; $1 names the boot (serial log file).
vm_boot() {
  local name="$1"
  rm -f "$WORK/qemu.pid"
  ip netns exec "$VM_NS" qemu-system-x86_64 \
    -name "dsvm-e2e,process=dsvm-e2e-qemu" -uuid "$VM_UUID" \
    -accel tcg,thread=multi -cpu max -smp 2 -m 2048 \
    -display none -no-reboot -daemonize -pidfile "$WORK/qemu.pid" \
    -serial "file:$WORK/serial-$name.log" \
    -kernel "$WORK/vmlinuz" -initrd "$WORK/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0,115200 net.ifnames=0 panic=-1" \
    -drive "file=$WORK/overlay.qcow2,if=virtio,format=qcow2,cache=unsafe" \
    -drive "file=$WORK/seed.img,if=virtio,format=raw,readonly=on" \
    -netdev "tap,id=n0,ifname=$VM_TAP,script=no,downscript=no" \
    -device "virtio-net-pci,netdev=n0,mac=$VM_MAC"
}

vm_qemu_pid() { [[ -s "$WORK/qemu.pid" ]] && cat "$WORK/qemu.pid"; }

vm_running() {
  local pid
  pid="$(vm_qemu_pid)" || return 1
  kill -0 "$pid" 2>/dev/null
}

# Host-side ssh, from inside the bridge namespace (the VM has no other route).
# The per-run key lives in $WORK; host keys are not pinned: the VM makes new
# ones on first boot and the bridge is private to this machine.
_ssh_opts=(-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
  -o ConnectTimeout=30 -o ConnectionAttempts=10 -o ServerAliveInterval=5 -o ServerAliveCountMax=3)

# Every call is bounded: a command stuck on a frozen share must not hang the run.
vm_ssh() {
  # The lab going down under the run (another `lab down`) kills qemu: answer
  # at once instead of timing out on every remaining check.
  vm_running || { echo "the VM is not running (qemu exited; see serial-*.log)" >&2; return 255; }
  timeout "${E2E_SSH_TIMEOUT:-300}" ip netns exec "$VM_NS" ssh "${_ssh_opts[@]}" -o BatchMode=yes -o IdentitiesOnly=yes \
    -i "$WORK/id_ed25519" "root@$VM_IP" "$@"
}

# vm_ssh for read-only probes during first boot: the join restarts sshd (its
# drop-in allows password logins) at a moment the harness cannot see, so a
# connection refused or reset (ssh's own exit 255) is tried again a few times.
# Only for commands that change nothing: a retried command may have run.
vm_ssh_ro() {
  local i rc
  for ((i = 0; i < 4; i++)); do
    rc=0
    vm_ssh "$@" || rc=$?
    ((rc == 255)) || return "$rc"
    vm_running || return "$rc"
    sleep 5
  done
  return "$rc"
}

# ssh as a domain user with a password from a root-only file: sshpass reads
# it from the environment (-e), never from argv.
vm_ssh_password() {
  local user="$1" password_file="$2"
  shift 2
  vm_running || { echo "the VM is not running (qemu exited; see serial-*.log)" >&2; return 255; }
  SSHPASS="$(cat "$password_file")" timeout "${E2E_SSH_TIMEOUT:-120}" ip netns exec "$VM_NS" sshpass -e ssh "${_ssh_opts[@]}" \
    -o PubkeyAuthentication=no -o PreferredAuthentications=password,keyboard-interactive \
    -o NumberOfPasswordPrompts=1 "$user@$VM_IP" "$@"
}

vm_wait_ssh() {
  local timeout="$1" deadline=$((SECONDS + $1))
  while ((SECONDS < deadline)); do
    vm_running || { log "qemu exited while waiting for ssh"; return 1; }
    if vm_ssh true 2>/dev/null; then return 0; fi
    sleep 3
  done
  log "no ssh to $VM_IP within ${timeout}s"
  return 1
}

# Clean shutdown through systemd, then qemu exits (-no-reboot turns a reboot
# into an exit too). Kills qemu if the guest does not go down in time.
vm_shutdown() {
  local pid i
  pid="$(vm_qemu_pid)" || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  vm_ssh systemctl poweroff >/dev/null 2>&1 || true
  for ((i = 0; i < 90; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 1
  done
  log "guest did not power off in 90 s: killing qemu $pid"
  kill "$pid" 2>/dev/null || true
  sleep 1
  kill -9 "$pid" 2>/dev/null || true
}

vm_kill() {
  local pid
  pid="$(vm_qemu_pid)" || return 0
  kill "$pid" 2>/dev/null || true
  for _ in 1 2 3 4 5; do kill -0 "$pid" 2>/dev/null || return 0; sleep 1; done
  kill -9 "$pid" 2>/dev/null || true
}
