# The VM-side scale-in check of the VM-image tier: the IMDS fake posts a
# Terminate for this VM, then the agent in the VM must unmount the share,
# delete its computer object on the DC and approve the event exactly once.
# Self-contained: sourced by test/e2e/run after checks.sh (it uses check,
# note, vm_ssh, ad_computer_attrs and the run's globals), and called last,
# since the VM leaves the domain:
#   check_scale_in "$WORK/fakes/urls.json" "$AD_COMPUTER"
# shellcheck shell=bash

# POST/GET the fakes' control API (it listens in the fakes' namespace).
_scale_in_control() {
  local urls=$1 method=$2 route=$3 body=${4:-}
  local base
  base=$(node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).control)' "$urls") || return 1
  if [[ $method == POST ]]; then
    ip netns exec "$VM_FAKES_NS" curl -sS --max-time 10 -X POST -H 'content-type: application/json' --data-binary @- "$base$route" <<<"$body"
  else
    ip netns exec "$VM_FAKES_NS" curl -sS --max-time 10 "$base$route"
  fi
}

# How many approvals of EVENT_ID the IMDS fake recorded.
_scale_in_approvals() {
  _scale_in_control "$1" GET /state | node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const st = JSON.parse(s); process.stdout.write(String(st.approvals.filter((a) => a.EventId === process.argv[1]).length)); });' "$2"
}

_scale_in_unmounted() { ! vm_ssh 'findmnt -n /data/workspace' >/dev/null 2>&1; }

_scale_in_computer_gone() {
  local attrs
  attrs=$(ad_computer_attrs "$1")
  [[ -z $attrs ]] || { printf 'still on the DC:\n%s\n' "$attrs"; return 1; }
}

_scale_in_approved_once() {
  local n
  n=$(_scale_in_approvals "$1" "$2") || { echo "cannot read the fake's state"; return 1; }
  [[ $n == 1 ]] || { echo "approvals of $2: $n (want exactly 1)"; return 1; }
}

# check_scale_in URLS_JSON COMPUTER_NAME
check_scale_in() {
  local urls=$1 computer=$2 event="e2e-terminate-$$" name notbefore posted waited
  name=$(_scale_in_control "$urls" GET /state | node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => process.stdout.write(String(JSON.parse(s).compute.name)));') || name=""
  if [[ -z $name || -z $computer ]]; then
    skip_check "scale-in: Terminate cleans up and is approved once" "no compute name or computer name (name='$name' computer='$computer')"
    return 0
  fi
  notbefore=$(date -u -d '+5 min' '+%a, %d %b %Y %H:%M:%S GMT')
  posted=$SECONDS
  _scale_in_control "$urls" POST /seed "{\"scheduledEvents\":[{\"EventId\":\"$event\",\"EventType\":\"Terminate\",\"Resources\":[\"$name\"],\"EventStatus\":\"Scheduled\",\"NotBefore\":\"$notbefore\",\"EventSource\":\"User\"}]}" >/dev/null
  # The daemon polls every scheduledEvents.pollSec (10 s by default); TCG is slow.
  retry_until 180 2 _scale_in_approved_once "$urls" "$event" >/dev/null 2>&1 || true
  waited=$((SECONDS - posted))
  note "scale-in: Terminate to approval in ${waited} s (under TCG)"
  check "scale-in: the share is unmounted after Terminate" _scale_in_unmounted
  check "scale-in: the computer object $computer is gone from the DC" _scale_in_computer_gone "$computer"
  # A few more polls: the event stays listed as Started and must not be approved again.
  sleep 25
  check "scale-in: the Terminate is approved exactly once" _scale_in_approved_once "$urls" "$event"
}
