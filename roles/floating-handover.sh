# shellcheck shell=sh
# nginx's first ExecStop on a balancer with floating_address (roles/floating.py): before nginx stops,
# hand the address over. The flag makes keepalived's check fail (floating-check.sh): keepalived gives
# the address up and a peer takes it; nginx then stops with no client sent to a closed port. Waits at
# most 4 s (nginx.service's TimeoutStopSec is 5 s a command), then lets nginx stop anyway.
# Given (assigned after the #!/bin/sh line at install): STOPPING_FILE, FLOATING (no prefix).
touch "$STOPPING_FILE"
ticks=0
while ip -o -4 addr show | grep -q " $FLOATING/" && [ "$ticks" -lt 40 ]; do
    sleep 0.1
    ticks=$((ticks + 1))
done
exit 0
