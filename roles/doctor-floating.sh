# `provision doctor` and `status` on a balancer with floating_address: which host holds the address
# and why, as findings (the format of doctor.sh). Read-only.
# Given: FLOATING (the address, no prefix), REASON_FILE (the last verdict of keepalived's check,
# roles/floating-check.sh), PORT (nginx's http_port), PEERS (the other balancers: "NAME=ADDRESS ...").
# Who holds it, when not this host: the peer whose link-layer address the floating address resolves
# to (VRRP needs one network segment, where both resolve), after a connection to each.

# shellcheck disable=SC3025  # bash: /dev/tcp is the point (no program to install)
mac_of() {
  timeout 1 bash -c "exec 3<>/dev/tcp/$1/$PORT" 2>/dev/null
  ip neigh show "$1" 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "lladdr") print $(i + 1)}'
}

reason=$(cat "$REASON_FILE" 2>/dev/null)
keepalived=$(systemctl is-active keepalived 2>/dev/null)
if [ "$keepalived" != active ]; then
  finding fail "floating address" "keepalived is $keepalived here: this host cannot take $FLOATING" \
    "systemctl status keepalived; provision deploy -H this host"
fi
if ip -o -4 addr show 2>/dev/null | grep -q " $FLOATING/"; then
  finding ok "floating address" "$FLOATING held here (check: ${reason:-not run yet})" ""
else
  holder_mac=$(mac_of "$FLOATING")
  holder=
  for peer in $PEERS; do
    if [ -n "$holder_mac" ] && [ "$(mac_of "${peer#*=}")" = "$holder_mac" ]; then
      holder="${peer%%=*} (${peer#*=})"
    fi
  done
  if [ -n "$holder" ]; then
    finding ok "floating address" "$FLOATING held by $holder; here: ${reason:-check not run yet}" ""
  else
    finding fail "floating address" "$FLOATING is held by no balancer that answers; here: ${reason:-check not run yet}" \
      "provision doctor -H lb (each balancer's keepalived and nginx)"
  fi
fi
