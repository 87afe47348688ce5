# Shared helpers for the VM-image tier. Sourced, not executed.
# shellcheck shell=bash disable=SC2034  # globals are read by the other files of the run

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_DIR="$(cd "$E2E_DIR/../.." && pwd)"

# Outside the repository on purpose: the base image is ~500 MB and is reused
# by every checkout on the machine (CI clones afresh for each run).
E2E_CACHE="${DSVM_E2E_CACHE:-/var/cache/dsvm-agent-e2e}"

log() { printf '[e2e %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[e2e %s] FATAL: %s\n' "$(date +%H:%M:%S)" "$*" >&2; exit 1; }

# The Debian mirror comes from the machine's own apt configuration, so the
# repository never names a registry host and follows whatever mirror (or
# snapshot, or proxy) the machine is set up with.
apt_mirror() {
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    # First stanza whose Suites list plain "bookworm" (not -security/-updates).
    uri="$(awk '
      /^[[:space:]]*$/ { if (suite && uri) { print uri; exit } suite = 0; uri = ""; next }
      /^URIs:/ { uri = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") suite = 1 }
      END { if (suite && uri) print uri }
    ' "$f" | head -n1)"
    if [[ -n "$uri" ]]; then printf '%s\n' "$uri"; return 0; fi
  done
  if [[ -f /etc/apt/sources.list ]]; then
    uri="$(awk '$1 == "deb" && $0 !~ /\[/ && $3 == "bookworm" { print $2; exit }
                $1 == "deb" && $0 ~ /\]/ { for (i = 1; i <= NF; i++) if ($i ~ /\]$/) { if ($(i+2) == "bookworm") { print $(i+1); exit } } }' \
      /etc/apt/sources.list)"
    if [[ -n "$uri" ]]; then printf '%s\n' "$uri"; return 0; fi
  fi
  return 1
}
