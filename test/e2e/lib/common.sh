# Shared helpers for the VM-image tier. Sourced, not executed.
# shellcheck shell=bash disable=SC2034  # globals are read by the other files of the run

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_DIR="$(cd "$E2E_DIR/../.." && pwd)"

# Outside the repository on purpose: the base image is ~500 MB and is reused
# by every checkout on the machine (CI clones afresh for each run).
E2E_CACHE="${DSVM_E2E_CACHE:-/var/cache/dsvm-agent-e2e}"

log() { printf '[e2e %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[e2e %s] FATAL: %s\n' "$(date +%H:%M:%S)" "$*" >&2; exit 1; }

# The Debian suite under test (SUITE=, as `make e2e SUITE=...` passes it).
# Only the suites whose package lists and checks this tier knows.
E2E_SUITES=(bullseye bookworm trixie)
E2E_SUITE="${SUITE:-bookworm}"

# Exit 2 for anything else, naming the allowed values (a typo must not build
# and boot a half-known image for ten minutes).
e2e_check_suite() {
  local s
  for s in "${E2E_SUITES[@]}"; do [[ "$E2E_SUITE" == "$s" ]] && return 0; done
  printf '[e2e] SUITE=%s is not supported: use SUITE=bullseye, SUITE=bookworm or SUITE=trixie (the default is bookworm)\n' \
    "$E2E_SUITE" >&2
  exit 2
}

# The Debian mirror comes from the machine's own apt configuration, so the
# repository never names a registry host and follows whatever mirror (or
# snapshot, or proxy) the machine is set up with. The machine lists its own
# suite (bookworm); the other suites are on the same archive, so the URI of
# a stanza that lists SUITE itself wins, else the one of the first stanza
# that lists a plain suite name (the archive; not -security or -updates,
# which are separate archives or pockets).
apt_mirror() {
  local suite="$1" f uri pass
  for pass in exact plain; do
    for f in /etc/apt/sources.list.d/*.sources; do
      [[ -f "$f" ]] || continue
      uri="$(awk -v want="$suite" -v pass="$pass" '
        function hit(s) { return pass == "exact" ? s == want : s !~ /-/ }
        /^[[:space:]]*$/ { if (suite && uri) { print uri; exit } suite = 0; uri = ""; next }
        /^URIs:/ { uri = $2 }
        /^Suites:/ { for (i = 2; i <= NF; i++) if (hit($i)) suite = 1 }
        END { if (suite && uri) print uri }
      ' "$f" | head -n1)"
      if [[ -n "$uri" ]]; then printf '%s\n' "$uri"; return 0; fi
    done
    if [[ -f /etc/apt/sources.list ]]; then
      # One-line format: deb [options] URI SUITE COMPONENTS...
      uri="$(awk -v want="$suite" -v pass="$pass" '
        function hit(s) { return pass == "exact" ? s == want : s !~ /-/ }
        $1 != "deb" { next }
        { i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ } }
        hit($(i + 1)) { print $i; exit }
      ' /etc/apt/sources.list)"
      if [[ -n "$uri" ]]; then printf '%s\n' "$uri"; return 0; fi
    fi
  done
  return 1
}
