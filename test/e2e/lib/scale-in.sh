# The VM-side scale-in check of the VM-image tier: the IMDS fake posts a
# Terminate for this VM (and, in a second round, a Preempt: a Spot
# eviction with 30 s notice), then the agent in the VM must close its own handles
# in the Files fake (and only its own), unmount the share, delete its DNS
# record and its computer object on the DC, and approve the event exactly
# once. Sourced by test/e2e/run after checks.sh (it uses check, note, vm_ssh,
# wait_health, vm_keytab_principal, ad_computer_attrs, VM_AGENT and the run's
# globals).
#
# It runs on the VM as first boot left it (joined, the A record registered by
# sssd's dyndns as the machine), after the watchdog checks. The VM then leaves
# the domain, so scale_in_reprovision runs `dsvm-agent provision` again before
# the deprovision checks, which need a joined VM. The other order
# (deprovision, provision, then scale-in) would test the DNS removal against a
# record the deleted account of the first join still owns, which the new
# account may not touch: a VM that scales in never has that history.
#   check_scale_in "$WORK/fakes/urls.json" "$AD_COMPUTER"
#   scale_in_reprovision "$WORK/fakes/urls.json" Terminate 7
#   check_scale_in "$WORK/fakes/urls.json" "$AD_COMPUTER" Preempt
#   scale_in_reprovision "$WORK/fakes/urls.json" Preempt
# shellcheck shell=bash

SCALE_IN_DIR=e2e-scale-in   # a folder of the share the seeded handles point into

# POST/GET the fakes' control API (it listens in the fakes' namespace).
_scale_in_control() {
  local urls=$1 method=$2 route=$3 body=${4:-}
  local base
  base=$(node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).control)' "$urls") || return 1
  if [[ $method == POST ]]; then
    ip netns exec "$VM_FAKES_NS" curl -sS --fail --max-time 10 -X POST -H 'content-type: application/json' --data-binary @- "$base$route" <<<"$body"
  else
    ip netns exec "$VM_FAKES_NS" curl -sS --fail --max-time 10 "$base$route"
  fi
}

# _scale_in_state URLS JS-EXPRESSION-OF-s: a fact from the fakes' state.
_scale_in_state() {
  _scale_in_control "$1" GET /state | node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      s = JSON.parse(s); const arg = process.argv[2]; process.stdout.write(String(eval(process.argv[1]))); });' "$2" "${3:-}"
}

# Open handles in the Files fake: two of this VM (its address and name), one of
# another VM, and one of a VM behind the same NAT address under another name.
_scale_in_seed_handles() {
  local urls=$1 body
  mkdir -p "$LAB_SHARE_DIR/$SCALE_IN_DIR"
  printf '{}\n' >"$LAB_SHARE_DIR/$SCALE_IN_DIR/own.ipynb"
  printf '{}\n' >"$LAB_SHARE_DIR/$SCALE_IN_DIR/other.ipynb"
  body=$(node -e '
    const [account, share, dir, ip, name] = process.argv.slice(1);
    const h = (handleId, path, clientIp, clientName) => ({ account, share, path, handleId, clientIp, clientName });
    process.stdout.write(JSON.stringify({ handles: [
      h("e2e-own-1", `${dir}/own.ipynb`, `${ip}:49152`, name),
      h("e2e-own-2", dir, `${ip}:49153`, name),
      h("e2e-other-vm", `${dir}/other.ipynb`, "10.77.0.99:49152", "dsvmpool-other"),
      h("e2e-same-nat-other-name", `${dir}/other.ipynb`, `${ip}:49160`, "dsvmpool-nat-peer"),
    ] }));' "$LAB_STORAGE_ACCOUNT" "$LAB_SHARE_NAME" "$SCALE_IN_DIR" "$VM_IP" "$VM_HOSTNAME")
  _scale_in_control "$urls" POST /seed "$body" >/dev/null
}

_scale_in_handles() { _scale_in_state "$1" 's.handles.map((h) => h.handleId).sort().join(" ")'; }

_scale_in_handles_are() {
  local got
  got=$(_scale_in_handles "$1") || { echo "cannot read the fake's state"; return 1; }
  [[ $got == "$2" ]] || { printf 'open handles: %s\nwant: %s\n' "$got" "$2"; return 1; }
}

_scale_in_approved_once() {
  local n
  n=$(_scale_in_state "$1" 's.approvals.filter((a) => a.EventId === arg).length' "$2") || { echo "cannot read the fake's state"; return 1; }
  [[ $n == 1 ]] || { echo "approvals of $2: $n (want exactly 1)"; return 1; }
}

_scale_in_mounted() { vm_ssh 'findmnt -n /data/workspace' >/dev/null 2>&1; }
_scale_in_unmounted() { ! _scale_in_mounted || { vm_ssh 'findmnt /data/workspace'; return 1; }; }

_scale_in_computer_present() { [[ $(ad_computer_attrs "$1") == *objectGUID* ]] || { echo "no $1\$ on the DC"; return 1; }; }
_scale_in_computer_gone() {
  local attrs
  attrs=$(ad_computer_attrs "$1")
  [[ -z $attrs ]] || { printf 'still on the DC:\n%s\n' "$attrs"; return 1; }
}

# The DC's own answer for HOST's A record (asked at the DC, no cache between).
_scale_in_dig() { "$LAB_CMD" dc-exec -- dig +short +time=2 +tries=1 "@$VM_GATEWAY_IP" A "$1.$LAB_DOMAIN" 2>&1; }

_scale_in_dns_is() {
  local got
  got=$(_scale_in_dig "$1")
  [[ $got == "$2" ]] || { printf 'the DC answers %s A: "%s" (want "%s")\n' "$1.$LAB_DOMAIN" "$got" "$2"; return 1; }
}

# Gone: the DC answers no A record, and its directory holds no live node for
# the name (AD keeps a deleted record as a tombstoned node until scavenging).
_scale_in_dns_gone() {
  _scale_in_dns_is "$1" "" || return 1
  local node
  node=$("$LAB_CMD" dc-exec -- ldbsearch -H "$LAB_STATE/dc/samba/private/sam.ldb" \
    -b "DC=$LAB_DOMAIN,CN=MicrosoftDNS,DC=DomainDnsZones,$LAB_BASE_DN" "(&(objectClass=dnsNode)(name=$1))" dNSTombstoned) ||
    { echo "ldbsearch failed: $node"; return 1; }
  if grep -q '^dn: ' <<<"$node" && ! grep -q '^dNSTombstoned: TRUE' <<<"$node"; then
    printf 'a live DNS node is left on the DC:\n%s\n' "$node"
    return 1
  fi
}

# The VM's A record at the DC before the event, so that its removal can be
# checked. sssd registers it (dyndns, as the machine) when it goes online and
# then once a day; a registration that failed at that moment (seen on a fast
# run: sssd went online right after the join) waits a day. So: up to 60 s for
# sssd's own, else the test registers it the way sssd does, as the machine
# account with GSS-TSIG. nsupdate's exit is not trusted (Samba's signed reply
# fails BIND's TSIG check, see dns-record.ts): the DC's answer decides.
# ensure_record HOST COMPUTER
_scale_in_ensure_record() {
  local host=$1 computer=$2 i dc
  for ((i = 0; i < 12; i++)); do
    if [[ $(_scale_in_dig "$host") == "$VM_IP" ]]; then
      echo "registered by sssd"
      return 0
    fi
    sleep 5
  done
  dc=$(lab_env DC_HOSTNAME)
  vm_ssh "d=\$(mktemp -d); export KRB5CCNAME=FILE:\$d/cc
    kinit -k -t /etc/krb5.keytab '$computer\$@$LAB_REALM' &&
      printf 'server %s\nrealm %s\nzone %s\nupdate delete %s. A\nupdate add %s. 3600 A %s\nsend\n' \
        '$dc' '$LAB_REALM' '$LAB_DOMAIN' '$host.$LAB_DOMAIN' '$host.$LAB_DOMAIN' '$VM_IP' | nsupdate -g
    rm -rf \$d" 2>&1 | tail -n 3
  _scale_in_dns_is "$host" "$VM_IP" || return 1
  echo "sssd had not registered it within 60 s: registered by the test as $computer\$ (nsupdate -g, as sssd does)"
}

# How many times the agent started the clean-up of EVENT of TYPE (its journal line).
_scale_in_cleanups_once() {
  local n
  n=$(vm_ssh "journalctl -u dsvm-agent --no-pager -o cat | grep -c '$2 $1 for this VM'") || true
  [[ $n == 1 ]] || { echo "clean-ups of $2 $1 started: ${n:-?} (want 1)"; return 1; }
}

# An IMDS date NotBefore SECONDS from now.
_scale_in_not_before() { date -u -d "+$1 sec" '+%a, %d %b %Y %H:%M:%S GMT'; }

# check_scale_in URLS_JSON COMPUTER_NAME [TYPE]
# TYPE is Terminate (5 minutes' notice, the default) or Preempt (a Spot
# eviction: 30 s). The event for another VM is posted in the first round only.
check_scale_in() {
  local urls=$1 computer=$2 type=${3:-Terminate} event name posted waited host notice=300
  event="e2e-${type,,}-$$"
  [[ $type == Preempt ]] && notice=30
  name=$(_scale_in_state "$urls" 's.compute.name') || name=""
  if [[ -z $name || -z $computer ]]; then
    skip_check "scale-in: $type cleans up and is approved once" "no compute name or computer name (name='$name' computer='$computer')"
    return 0
  fi
  host=${computer,,}
  _scale_in_seed_handles "$urls"
  # Facts before the event, so that the checks after it can fail.
  check "$type, before: the share is mounted, $computer\$ is on the DC, four handles are open" \
    eval "_scale_in_mounted && _scale_in_computer_present '$computer' &&
      _scale_in_handles_are '$urls' 'e2e-other-vm e2e-own-1 e2e-own-2 e2e-same-nat-other-name'"
  check "$type, before: $host.$LAB_DOMAIN A $VM_IP is at the DC, registered as the machine" _scale_in_ensure_record "$host" "$computer"
  if [[ $type == Terminate ]]; then
    # An event for another VM of the pool first: never ours to act on or approve.
    _scale_in_control "$urls" POST /seed "{\"scheduledEvents\":[{\"EventId\":\"$event-other\",\"EventType\":\"Terminate\",\"Resources\":[\"dsvmpool_999\"],\"EventStatus\":\"Scheduled\",\"NotBefore\":\"$(_scale_in_not_before 300)\",\"EventSource\":\"User\"}]}" >/dev/null
    sleep 25 # two of the daemon's polls (scheduledEvents.pollSec: 10 s by default)
    check "scale-in: a Terminate for another VM is left alone (not approved, share still mounted)" \
      eval "_scale_in_mounted && [[ \$(_scale_in_state '$urls' 's.approvals.length') == 0 ]]"
  fi

  posted=$SECONDS
  _scale_in_control "$urls" POST /seed "{\"scheduledEvents\":[{\"EventId\":\"$event\",\"EventType\":\"$type\",\"Resources\":[\"$name\"],\"EventStatus\":\"Scheduled\",\"NotBefore\":\"$(_scale_in_not_before $notice)\",\"EventSource\":\"$([[ $type == Preempt ]] && echo Platform || echo User)\"}]}" >/dev/null
  # The daemon polls every 10 s; TCG is slow.
  retry_until 180 2 _scale_in_approved_once "$urls" "$event" >/dev/null 2>&1 || true
  waited=$((SECONDS - posted))
  note "$type: posted to approval in ${waited} s (under TCG, 10 s polls; the event gives ${notice} s)"
  check "$type: this VM's handles are closed in the Files fake, and only this VM's" \
    _scale_in_handles_are "$urls" 'e2e-other-vm e2e-same-nat-other-name'
  check "$type: the share is unmounted" _scale_in_unmounted
  check "$type: the DNS record $host.$LAB_DOMAIN is gone from the DC" _scale_in_dns_gone "$host"
  check "$type: the computer object $computer is gone from the DC" _scale_in_computer_gone "$computer"
  # A few more polls: the event stays listed as Started and must not be approved again.
  sleep 25
  check "$type: approved exactly once, and its clean-up ran once" \
    eval "_scale_in_approved_once '$urls' '$event' && _scale_in_cleanups_once '$event' '$type'"
  _scale_in_control "$urls" POST /seed '{"handles":[]}' >/dev/null || true
  rm -rf "${LAB_SHARE_DIR:?}/$SCALE_IN_DIR"
}

# The VM left the domain: the event is withdrawn (as if the scale-in were
# cancelled), the daemon stopped, `dsvm-agent provision` joins and mounts
# again, and the daemon is started. With INSTANCE, IMDS first presents a new
# VM of the scale set, dsvmpool_INSTANCE with a VM id of its own (the agent
# takes it for a new VM, as it does for a captured image), so the join takes
# a new computer name, as a VM that replaces a scaled-in one does. The same
# name joined again could not register its DNS record as the machine: AD
# keeps a deleted record as a tombstone owned by the deleted account.
_scale_in_provision_again() {
  local seed='{"scheduledEvents":[]}'
  [[ -z ${2:-} ]] ||
    seed="{\"scheduledEvents\":[],\"vm\":{\"compute\":{\"name\":\"dsvmpool_$2\",\"vmId\":\"$(cat /proc/sys/kernel/random/uuid)\"}}}"
  _scale_in_control "$1" POST /seed "$seed" >/dev/null || { echo "cannot withdraw the event"; return 1; }
  vm_ssh "systemctl stop dsvm-agent && $VM_AGENT provision </dev/null && systemctl start dsvm-agent" || return 1
  wait_health Healthy 300 || return 1
  local principal
  principal=$(vm_keytab_principal) && [[ -n $principal ]] || { echo "no machine principal in the keytab"; return 1; }
  _scale_in_computer_present "${principal% *}" && _scale_in_mounted
}

# scale_in_reprovision URLS_JSON TYPE [INSTANCE]; AD_COMPUTER then names the
# new account (check runs its command in a subshell, so it is read again here).
scale_in_reprovision() {
  local as=""
  [[ -z ${3:-} ]] || as=" as dsvmpool_$3 (a new VM of the scale set)"
  check "after $2: provision joins$as and mounts again, Healthy (for the checks that follow)" _scale_in_provision_again "$1" "${3:-}"
  local principal
  principal=$(vm_keytab_principal 2>/dev/null || true)
  [[ -z $principal ]] || AD_COMPUTER=${principal% *}
}
