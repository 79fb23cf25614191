# shellcheck shell=bash
# keepalived's check on a balancer (roles/floating.py): exit 0 while this host may hold the floating
# address: nginx answers the site's health path on loopback with any HTTP status (a 502 when every app
# host is down is the same on every balancer: moving would not help), and the operator has not set
# floating_standby, and nginx is not being stopped. Each exit writes its reason to REASON_FILE for `provision status`.
# Given (assigned after the #!/bin/bash line at install): STANDBY (1: floating_standby), PORT, HOST_HEADER,
# HEALTH_PATH, REASON_FILE, STOPPING_FILE (floating-handover.sh's flag).
# shellcheck disable=SC3025,SC3045,SC3057  # bash, not sh: /dev/tcp, read -t, ${v:0:3} (no program started every second)
if [ "$STANDBY" = 1 ]; then
    echo "standby: floating_standby is set for this host" > "$REASON_FILE"
    exit 1
fi
if [ -e "$STOPPING_FILE" ]; then
    echo "nginx is stopping here (systemctl stop nginx, or a poweroff)" > "$REASON_FILE"
    exit 1
fi
status=
if { exec 3<>"/dev/tcp/127.0.0.1/$PORT"; } 2>/dev/null; then
    printf 'GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: provision-vrrp-check\r\n\r\n' "$HEALTH_PATH" "$HOST_HEADER" >&3
    read -r -t 1 _ status _ <&3
    exec 3<&-
fi
case $status in
    [1-5][0-9][0-9]*) echo "nginx answers on port $PORT (${status:0:3})" > "$REASON_FILE"; exit 0 ;;
esac
echo "nginx does not answer on port $PORT" > "$REASON_FILE"
exit 1
