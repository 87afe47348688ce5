#!/bin/bash
# Runs inside the VM: lists every place holding the storage key (read from
# stdin) other than the credentials files. Exit 0: none; 1: found (listed).
set -u
IFS= read -r key
[[ -n "$key" ]] || { echo "leak-scan: no key on stdin"; exit 2; }
keyfile=$(mktemp /run/e2e-key.XXXXXX)
chmod 0600 "$keyfile"
printf '%s\n' "$key" >"$keyfile"
trap 'rm -f "$keyfile"' EXIT
found=0
report() { echo "key found: $1"; found=1; }

# Every regular file on the root and runtime filesystems (-xdev: not the
# share itself, whose content lives on the server).
while IFS= read -r -d '' f; do
  [[ "$f" == "$keyfile" ]] && continue
  case "$f" in /etc/smbcredentials/*) continue ;; esac
  report "$f"
done < <(find / /run /dev/shm -xdev -type f ! -path "$keyfile" -print0 2>/dev/null |
  xargs -0 -r grep -lF -a -Z -f "$keyfile" 2>/dev/null)

# The journal, decoded (fields may be stored compressed).
if journalctl --no-pager -o json 2>/dev/null | grep -qF -f "$keyfile"; then
  report "the journal"
fi

# Command lines and environments of every process.
for f in /proc/[0-9]*/cmdline /proc/[0-9]*/environ; do
  grep -qF -a -f "$keyfile" "$f" 2>/dev/null && report "$f ($(tr '\0' ' ' <"${f%/*}/cmdline" 2>/dev/null | cut -c1-80))"
done

# The credentials file itself must be root-only.
for f in /etc/smbcredentials/*; do
  [[ -e "$f" ]] || continue
  perm=$(stat -c '%a %U:%G' "$f")
  [[ "$perm" == "600 root:root" ]] || { echo "credentials file $f is $perm, want 600 root:root"; found=1; }
done
exit "$found"
