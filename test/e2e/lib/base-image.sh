# Base VM image: a debootstrapped Debian root filesystem of $E2E_SUITE
# (bullseye, bookworm or trixie), cached on the machine between runs, one per
# suite. Sourced by test/e2e/run; `ensure_base_image` prints the cached rootfs
# directory.
# shellcheck shell=bash

# Bump when the plain-file edits below change: the cache key is this plus the
# package list, so an edit here rebuilds the image once.
BASE_IMAGE_VERSION=3

# LAB.md's list, plus what the e2e itself needs (curl for /health inside the
# VM) and the .deb's Depends so that `dpkg -i` in the chroot needs no network,
# as in an image build where the base image already carries them.
# python3-cffi-backend and libpam-systemd stand in for virtual packages that
# debootstrap cannot resolve (cloud-init, polkitd pull them).
# The same names exist in all three suites (checked against each suite's
# Packages), except polkit's daemon: bullseye ships it as policykit-1
# (0.105), bookworm and trixie as polkitd. trixie still has ifupdown and
# isc-dhcp-client; cloud-init renders the seed's static address for ifupdown
# on every suite, so the network is set up the same way everywhere.
# ldap-utils and libsasl2-modules-gssapi-mit are Depends of the package (the
# adcli 0.9.0 fallback); nftables is what the IMDS guard runs (`nft`), which
# the agent's own error text says the package depends on; bind9-dnsutils
# brings nsupdate (the VM's DNS record removed on scale-in).
BASE_PACKAGES_COMMON=(
  systemd systemd-sysv udev dbus kmod cloud-init cifs-utils keyutils
  openssh-server sssd sssd-tools adcli realmd libpam-systemd
  krb5-user libpam-sss libnss-sss linux-image-cloud-amd64 initramfs-tools
  ifupdown isc-dhcp-client iproute2 netbase sudo procps e2fsprogs
  ca-certificates python3-cffi-backend
  libstdc++6 libgcc-s1 libpam-runtime curl
  ldap-utils libsasl2-modules-gssapi-mit nftables bind9-dnsutils
)

# The packages above that are in the image only because the agent needs
# them (not the harness, not LAB.md's set): the package's Depends must name
# each, or an image that lacks one breaks at first boot while this tier,
# whose base image has it anyway, would not notice. A check compares.
BASE_PACKAGES_FOR_DEB=(
  libstdc++6 libgcc-s1 libpam-runtime ldap-utils libsasl2-modules-gssapi-mit nftables bind9-dnsutils
)

# JupyterHub as the DSVM ships it (issue 20): the hub with PAM login
# (python3-pamela), its proxy, and the classic notebook server for the
# single-user servers. Debian has jupyterhub from bookworm on; bullseye has
# none (its hub check is skipped and says so). The proxy pulls Debian's own
# nodejs as /usr/bin/node: the agent runs on the runtime it ships in
# /usr/lib/dsvm-agent, so the two live side by side, as on a DSVM whose users
# install their own node. The last names of each list stand in for virtual
# packages debootstrap cannot resolve (nodejs:any, node-safe-stable-stringify,
# and on bookworm libboost-regex1.74.0-icu72; mime-support on trixie).
BASE_PACKAGES_JUPYTERHUB=(jupyterhub python3-pamela node-configurable-http-proxy python3-notebook nodejs node-fast-safe-stringify)

# suite_has_jupyterhub SUITE: whether the image of that suite carries the hub.
suite_has_jupyterhub() { [[ "$1" != bullseye ]]; }

# base_packages SUITE: the list debootstrap gets for that suite.
base_packages() {
  printf '%s\n' "${BASE_PACKAGES_COMMON[@]}"
  case "$1" in
    bullseye) printf '%s\n' policykit-1 ;;
    bookworm) printf '%s\n' polkitd "${BASE_PACKAGES_JUPYTERHUB[@]}" libboost-regex1.74.0 ;;
    trixie) printf '%s\n' polkitd "${BASE_PACKAGES_JUPYTERHUB[@]}" media-types ;;
    *) die "no package list for suite $1" ;;
  esac
}

# The key names the suite in clear (so a look at the cache says which image
# is which) and hashes what makes the image: suite, edits' version, packages.
base_image_key() {
  local suite="$1"
  printf '%s-%s\n' "$suite" \
    "$({ printf '%s\n' "$suite" "$BASE_IMAGE_VERSION"; base_packages "$suite"; } | sha256sum | cut -c1-16)"
}

# Plain file edits, no services run: what an image pipeline does before the
# first boot of an instance.
_prepare_rootfs() {
  local root="$1"
  # A fresh machine-id per boot (systemd fills an empty file on first boot),
  # and host keys made by cloud-init on first boot, as in a captured image.
  : >"$root/etc/machine-id"
  rm -f "$root/var/lib/dbus/machine-id"
  rm -f "$root"/etc/ssh/ssh_host_*

  printf 'LABEL=root / ext4 rw,errors=remount-ro 0 1\n' >"$root/etc/fstab"

  mkdir -p "$root/etc/cloud/cloud.cfg.d"
  cat >"$root/etc/cloud/cloud.cfg.d/90-dsvm-e2e.cfg" <<'CFG'
# Only the seed disk: no network probing for other clouds' metadata.
datasource_list: [NoCloud, None]
# The image keeps its sources; nothing is installed at boot.
apt:
  preserve_sources_list: true
CFG

  # Timers that would only cost boot time under TCG.
  local unit
  for unit in apt-daily.timer apt-daily-upgrade.timer fstrim.timer \
    man-db.timer e2scrub_all.timer e2scrub_reap.service logrotate.timer; do
    ln -sfn /dev/null "$root/etc/systemd/system/$unit"
  done

  # No PackageKit in the image: without this realmd refuses to join with
  # "Necessary packages are not installed" (LAB.md).
  cat >"$root/etc/realmd.conf" <<'CFG'
[service]
automatic-install = no

[sssd-packages]
sssd = /usr/sbin/sssd
sss_cache = /usr/sbin/sss_cache

[adcli-packages]
adcli = /usr/sbin/adcli
CFG

  printf 'dsvm-e2e-base\n' >"$root/etc/hostname"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*_Packages
}

# Prints the cached rootfs of $E2E_SUITE; builds it (debootstrap, a few
# minutes) when missing.
ensure_base_image() {
  local suite="$E2E_SUITE" key dir mirror tmp
  key="$(base_image_key "$suite")"
  dir="$E2E_CACHE/base-$key"
  mkdir -p "$E2E_CACHE"
  # One builder per suite at a time; a second run waits and then reuses the
  # result. Different suites build side by side (own lock, own .deb cache).
  exec {lockfd}>"$E2E_CACHE/.lock-$suite"
  flock "$lockfd"
  if [[ -f "$dir/.complete" ]]; then
    printf '%s\n' "$dir/rootfs"
    flock -u "$lockfd"
    return 0
  fi
  mirror="$(apt_mirror "$suite")" || die "no Debian mirror in the machine's apt sources (/etc/apt/sources.list.d/*.sources or /etc/apt/sources.list)"
  log "building base image $key from $mirror (debootstrap, a few minutes)"
  tmp="$E2E_CACHE/tmp-$key.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp" "$E2E_CACHE/debs-$suite"
  local include t0=$SECONDS
  include="$(base_packages "$suite" | paste -sd,)"
  if ! debootstrap --variant=minbase --cache-dir="$E2E_CACHE/debs-$suite" \
    --include="$include" "$suite" "$tmp/rootfs" "$mirror" >"$tmp/debootstrap.log" 2>&1; then
    tail -n 30 "$tmp/debootstrap.log" >&2
    die "debootstrap of $suite failed (log: $tmp/debootstrap.log)"
  fi
  _prepare_rootfs "$tmp/rootfs"
  ls "$tmp"/rootfs/boot/vmlinuz-* "$tmp"/rootfs/boot/initrd.img-* >/dev/null \
    || die "base image has no kernel or initrd"
  printf '%s %s s\n' "$suite" "$((SECONDS - t0))" >"$tmp/build-time"
  touch "$tmp/.complete"
  # This suite's older keys are stale by definition (and so are keys from
  # before the suite was part of the name); keep the disk from filling up.
  find "$E2E_CACHE" -maxdepth 1 \( -name "base-$suite-*" -o -regex '.*/base-[0-9a-f]*' \) \
    ! -name "base-$key" -exec rm -rf {} +
  rm -rf "$E2E_CACHE/debs"
  mv "$tmp" "$dir"
  flock -u "$lockfd"
  log "base image ready in $((SECONDS - t0)) s: $dir"
  printf '%s\n' "$dir/rootfs"
}
