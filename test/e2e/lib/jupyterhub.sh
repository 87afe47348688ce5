# JupyterHub in the VM image (issue 20): the hub as the DSVM runs it, from
# the files in packaging/jupyterhub/, and a browser on the host driving it.
# Sourced by test/e2e/run; the seed parts by lib/seed.sh.
# shellcheck shell=bash

E2E_HUB_PORT=8000
E2E_HUB_FILES="$REPO_DIR/packaging/jupyterhub"

# seed_hub_write_files: cloud-config write_files entries (indented for the
# list in lib/seed.sh) for the hub config and unit, taken as they are from
# packaging/jupyterhub/, plus the run's own lines after the DSVM's.
seed_hub_write_files() {
  cat <<'USER'
  - path: /etc/jupyterhub/jupyterhub_config.py
    permissions: "0644"
    content: |
USER
  sed 's/^/      /' "$E2E_HUB_FILES/jupyterhub_config.py"
  # JupyterHub's defaults give a server 30 s to answer after its start and
  # 60 s to start: under TCG its Python start alone can take longer. A VM on
  # real hardware needs neither line.
  cat <<'USER'
      # VM test only (emulated CPU): more time for a single-user server to start.
      c.Spawner.http_timeout = 180
      c.Spawner.start_timeout = 240
  - path: /etc/systemd/system/jupyterhub.service
    permissions: "0644"
    content: |
USER
  sed 's/^/      /' "$E2E_HUB_FILES/jupyterhub.service"
}

# seed_hub_runcmd: the runcmd line that (re)starts the hub with that unit.
# restart, not start: Debian's package enables its own unit of the same name,
# which may already run from the image's first boot with Debian's config.
seed_hub_runcmd() {
  printf '%s\n' '  - systemctl daemon-reload && systemctl enable jupyterhub.service && systemctl restart --no-block jupyterhub.service'
}

# The hub's unit is ours (the packaged file), active, and its login page
# answers inside the VM, within a few minutes of boot under TCG.
hub_serves_login() {
  local deadline=$((SECONDS + 240)) out
  while :; do
    out="$(E2E_SSH_TIMEOUT=30 vm_ssh "systemctl show jupyterhub -p ActiveState -p FragmentPath -p NRestarts
      echo \"login page: HTTP \$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 http://127.0.0.1:$E2E_HUB_PORT/hub/login)\"" 2>&1)" || true
    if grep -qx 'ActiveState=active' <<<"$out" && grep -qx 'FragmentPath=/etc/systemd/system/jupyterhub.service' <<<"$out" &&
      grep -qx 'login page: HTTP 200' <<<"$out"; then
      return 0
    fi
    ((SECONDS < deadline)) && vm_running || break
    sleep 5
  done
  printf '%s\n' "$out"
  E2E_SSH_TIMEOUT=30 vm_ssh 'journalctl -u jupyterhub --no-pager -o cat | tail -n 15' 2>&1
  return 1
}

# The config's first lines are the packaged file, byte for byte.
hub_config_is_packaged() {
  local n
  n="$(wc -l <"$E2E_HUB_FILES/jupyterhub_config.py")"
  vm_ssh "head -n $n /etc/jupyterhub/jupyterhub_config.py" | cmp - "$E2E_HUB_FILES/jupyterhub_config.py"
}

hub_journal() { E2E_SSH_TIMEOUT=30 vm_ssh 'journalctl -u jupyterhub --no-pager -o cat'; }

# The hook ran for alice's spawn and said what it did in the hub's log:
# done, or not finished within the agent's bound (exit 3: the daemon
# finishes in the background), which a first login under TCG can take.
# Prints the line.
hub_log_has_hook_line() {
  local lines
  lines="$(hub_journal | grep -E 'dsvm-agent (login alice|pre_spawn_hook)')" || { echo "no line of the hook in the hub's journal"; hub_journal | tail -n 15; return 1; }
  printf '%s\n' "$lines"
  grep -qE 'dsvm-agent login alice: (done|not finished yet) via daemon' <<<"$lines"
}

# mallory's password is right: PAM's account step (sssd's access control)
# refused her, and no spawn ran, so no hook line names her.
hub_refused_mallory_at_account() {
  local log
  log="$(hub_journal)" || return 1
  grep -q 'PAM Account Check failed (mallory' <<<"$log" || { echo "no PAM account refusal for mallory in the hub's journal"; grep -i mallory <<<"$log" | tail -n 5; return 1; }
  ! grep -q 'dsvm-agent login mallory' <<<"$log" || { echo "the hook ran for mallory"; return 1; }
  E2E_SSH_TIMEOUT=30 vm_ssh 'test ! -e /data/workspace/mallory' || { echo "/data/workspace/mallory exists in the VM"; return 1; }
}

# The browser part: one TAP line per line of test/e2e/jupyterhub-browser.ts.
hub_browser_checks() {
  local out="$WORK/hub-browser.out" verdict name detail rc=0
  (cd "$REPO_DIR" && timeout 900 "$REPO_DIR/node_modules/.bin/tsx" test/e2e/jupyterhub-browser.ts \
    --netns "$VM_NS" --hub "http://$VM_IP:$E2E_HUB_PORT" --share-dir "$LAB_SHARE_DIR" \
    --secrets "$LAB_STATE" --note "saved in the VM's hub by e2e run $RUN_ID" --shots "$WORK/screenshots") \
    >"$out" 2>"$WORK/hub-browser.err" || rc=$?
  while IFS=$'\t' read -r verdict name detail; do
    case "$verdict" in
      ok) pass "JupyterHub in the browser: $name" ;;
      "not ok") fail "JupyterHub in the browser: $name" "$detail" ;;
    esac
  done <"$out"
  if ((rc != 0)) && ! grep -q '^not ok' "$out"; then
    fail "JupyterHub in the browser: the driver ran" "exit $rc: $(tail -n 15 "$WORK/hub-browser.err")"
  fi
}

# Before alice's first ssh login on purpose: a data scientist who only ever
# uses the hub gets ~/notebooks/remote from the pre_spawn_hook alone.
checks_jupyterhub() {
  if ! suite_has_jupyterhub "$E2E_SUITE"; then
    skip_absent "JupyterHub: the hub, the browser login and a notebook saved on the share" \
      "Debian $E2E_SUITE has no jupyterhub package (it is in Debian from bookworm on), so this image has no hub"
    return 0
  fi
  local t0=$SECONDS
  check "JupyterHub: cloud-init installed the packaged unit, the hub is active and serves its login page on port $E2E_HUB_PORT" hub_serves_login
  check "JupyterHub: the hub config starts with packaging/jupyterhub/jupyterhub_config.py, byte for byte" hub_config_is_packaged
  if [[ ! -x /usr/bin/chromium ]]; then
    fail "JupyterHub in the browser" "no /usr/bin/chromium on the host (Debian's chromium, in .ci/apt-packages.txt)"
    return 0
  fi
  hub_browser_checks
  check "JupyterHub: alice's link ~/notebooks/remote, made by the hook, points to /data/workspace/alice/notebooks" alice_link_ok
  local out name="JupyterHub: the hub's log has the hook's outcome for alice, answered by the daemon"
  if out="$(hub_log_has_hook_line 2>&1)"; then
    pass "$name"
    note "hub log: ${out##*JupyterHub }"
  else
    fail "$name" "$out"
  fi
  check "JupyterHub: mallory was refused by PAM's account step, no hook ran for her, no folder in the VM" hub_refused_mallory_at_account
  note "JupyterHub checks took $((SECONDS - t0)) s"
}
