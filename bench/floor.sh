#!/bin/bash
# The floor of a no-op check: one bash script over one SSH session per host, checking what the
# deploy manages (packages, file checksums, links, absent paths such as the default site, services,
# the current release) and the health path through nginx. Exit 0 = converged, 1 = something differs.
# Given (bench/compare_state.py floor_params, prepended): PACKAGES, SUMS, LINKS, ABSENT, RUNNING,
# STOPPED, RELEASE, CURRENT, HEALTH_PORT,
# HEALTH_PATH.
bad=0
differs() { echo "differs: $*"; bad=1; }
read -ra wanted <<< "$PACKAGES"
installed=$(dpkg-query -W -f='${db:Status-Status}\n' "${wanted[@]}" 2>/dev/null | grep -c '^installed$')
[ "$installed" = "${#wanted[@]}" ] || differs packages
printf '%s\n' "$SUMS" | sha256sum --quiet --check - >/dev/null 2>&1 || differs files
for pair in $LINKS; do
    [ "$(readlink "${pair%%=*}")" = "${pair#*=}" ] || differs "link ${pair%%=*}"
done
for path in $ABSENT; do
    [ -e "$path" ] || [ -L "$path" ] && differs "present $path"
done
if [ "$(readlink "$CURRENT")" != "$RELEASE" ] || [ ! -e "$RELEASE/.complete" ]; then differs release; fi
for unit in $RUNNING; do
    if ! systemctl is-active -q "$unit" || ! systemctl is-enabled -q "$unit"; then differs "service $unit"; fi
done
for unit in $STOPPED; do
    systemctl is-active -q "$unit" && differs "service $unit runs"
done
# the health path through nginx, by bash's /dev/tcp: no fork, no interpreter
if exec 3<>"/dev/tcp/127.0.0.1/$HEALTH_PORT"; then
    printf 'GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n' "$HEALTH_PATH" >&3
    read -r _ status _ <&3
    [ "$status" = 200 ] || differs "health $status"
else
    differs health
fi
exit "$bad"
