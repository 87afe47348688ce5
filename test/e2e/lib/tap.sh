# Minimal TAP producer for the e2e checks: one line per check, a diagnostic
# block under each failure, and a non-zero exit if anything failed.
# shellcheck shell=bash disable=SC2034  # globals are read by the other files of the run

TAP_N=0
TAP_FAILED=0
TAP_FAILED_NAMES=()

_tap_result() {
  local ok="$1" name="$2" detail="${3:-}"
  TAP_N=$((TAP_N + 1))
  if [[ "$ok" == 1 ]]; then
    printf 'ok %d - %s\n' "$TAP_N" "$name"
  else
    TAP_FAILED=$((TAP_FAILED + 1))
    TAP_FAILED_NAMES+=("$name")
    printf 'not ok %d - %s\n' "$TAP_N" "$name"
    if [[ -n "$detail" ]]; then
      printf '%s\n' "$detail" | head -n 25 | sed 's/^/  # /'
    fi
  fi
}

# check NAME CMD...: passes when CMD (a command or a function of this shell)
# exits 0; its output is shown on failure. Sets CHECK_OK to 1 or 0 and
# always returns 0, so a failed check never stops the run.
CHECK_OK=0
E2E_VM_EXPECTED=0   # set while the VM should be up: its loss ends the run
check() {
  local name="$1" out rc
  shift
  bail_if_vm_gone
  set +e
  out="$("$@" 2>&1)"
  rc=$?
  set -e
  if ((rc == 0)); then
    CHECK_OK=1
    _tap_result 1 "$name"
  else
    CHECK_OK=0
    _tap_result 0 "$name" "exit $rc: $out"
  fi
}

# qemu exits when someone runs `lab down` under the run (it ends every
# process in the lab's namespaces): every later check would only time out.
bail_if_vm_gone() {
  [[ "$E2E_VM_EXPECTED" == 1 ]] || return 0
  vm_running && return 0
  printf 'Bail out! the VM is gone (qemu exited; was the lab taken down under the run?)\n'
  tap_done || true
  exit 1
}

# note TEXT: a TAP comment line (facts of the run, no verdict).
note() { printf '# %s\n' "$*"; }

pass() { _tap_result 1 "$1"; }
fail() { _tap_result 0 "$1" "${2:-}"; }

# skip NAME REASON: not run because an earlier step it needs failed. Counts
# as a failure: a skipped check proves nothing.
skip_check() { _tap_result 0 "$1" "not run: $2"; }

# skip_absent NAME REASON: a check that cannot apply to this image (the
# suite lacks what it tests): TAP's own SKIP directive, with the reason.
# Not for a check whose prerequisite failed (that is skip_check, a failure).
skip_absent() {
  TAP_N=$((TAP_N + 1))
  printf 'ok %d - %s # SKIP %s\n' "$TAP_N" "$1" "$2"
}

tap_done() {
  printf '1..%d\n' "$TAP_N"
  if ((TAP_FAILED > 0)); then
    printf '# FAILED %d of %d checks:\n' "$TAP_FAILED" "$TAP_N"
    printf '#   %s\n' "${TAP_FAILED_NAMES[@]}"
    return 1
  fi
  printf '# all %d checks passed\n' "$TAP_N"
}

# retry_until SECONDS INTERVAL CMD...: CMD until it succeeds or time runs out.
retry_until() {
  local deadline=$((SECONDS + $1)) interval="$2"
  shift 2
  while :; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    ((SECONDS < deadline)) || break
    vm_running || break
    sleep "$interval"
  done
  "$@"
}
