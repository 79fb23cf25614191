# The app's restart without a refused or cut request (roles/uwsgi.py, handler "restart app").
# nginx connects to LINK, a symlink to the socket of the uWSGI that serves. A standby uWSGI (same
# ini, environment and release, its own socket, a transient unit) takes the traffic while the app's
# own unit restarts:
#   1. start the standby and prove its health on its socket: a release that fails here never
#      serves a request, and the running instance was never touched;
#   2. point LINK at the standby (an atomic rename: every new connection goes there);
#   3. let the main instance answer what it already accepted, restart it, prove its health;
#   4. point LINK back at the main socket, let the standby answer what it accepted, stop it.
# A failure leaves LINK on an instance that answered. A re-run that finds LINK on a live standby
# (an earlier run failed at 3) keeps that standby serving and goes on from 3.
# Given: UNIT, STANDBY_UNIT, INI, ENV_FILE, LINK, MAIN, STANDBY, DRAIN_SECONDS; function
# `healthy SOCKET` (one health check straight on a uWSGI socket, prints the answer).
# Sets: SINCE (read by unit_failure.sh), FAILED_UNIT (the unit whose journal explains a failure).

# point_link SOCKET: LINK names SOCKET from now on (relative, same directory)
point_link() {
    ln -sfn "$(basename "$1")" "$LINK.provision-tmp" && mv -fT "$LINK.provision-tmp" "$LINK"
}

# settle SOCKET: wait until no connection waits in SOCKET's accept queue or is open on it
settle() {
    ticks=0
    while [ "$ticks" -lt $((DRAIN_SECONDS * 10)) ]; do
        busy=$(ss -xanH 2>/dev/null | awk -v s="$1" '$5 == s && ($2 == "ESTAB" || ($2 == "LISTEN" && $3 > 0))' | wc -l)
        [ "$busy" -eq 0 ] && return 0
        sleep 0.1
        ticks=$((ticks + 1))
    done
    echo "$1: connections still open after ${DRAIN_SECONDS}s; going on"
}

# answers UNIT SOCKET: wait up to 15 s for SOCKET to pass the health check; fails at once if UNIT ends
answers() {
    tries=0
    while [ "$tries" -lt 30 ]; do
        if ! systemctl is-active -q "$1"; then
            echo "$1 is not running ($(systemctl is-active "$1"))"
            return 1
        fi
        healthy "$2" >/dev/null && return 0
        sleep 0.5
        tries=$((tries + 1))
    done
    healthy "$2"
}

start_standby() {
    systemctl stop "$STANDBY_UNIT" 2>/dev/null
    systemctl reset-failed "$STANDBY_UNIT" 2>/dev/null
    systemd-run --quiet --collect --unit "$STANDBY_UNIT" -p Type=notify -p NotifyAccess=all \
        -p KillSignal=SIGTERM -p KillMode=mixed -p EnvironmentFile="$ENV_FILE" \
        /usr/bin/uwsgi --ini "$INI:standby" || return 1
    if ! answers "$STANDBY_UNIT" "$STANDBY"; then
        systemctl stop "$STANDBY_UNIT" 2>/dev/null
        return 1
    fi
}

# shellcheck disable=SC2034  # SINCE and FAILED_UNIT are read by the handler's explain (unit_failure.sh)
swap_restart() {
    SINCE=$(date '+%F %T')
    FAILED_UNIT=$STANDBY_UNIT
    if [ "$(readlink "$LINK")" != "$(basename "$STANDBY")" ] || ! systemctl is-active -q "$STANDBY_UNIT"; then
        start_standby || return 1
        point_link "$STANDBY"
    fi
    FAILED_UNIT=$UNIT
    settle "$MAIN"
    systemctl restart "$UNIT" || return 1
    answers "$UNIT" "$MAIN" || return 1
    point_link "$MAIN"
    settle "$STANDBY"
    systemctl stop "$STANDBY_UNIT"
    rm -f "$STANDBY"  # uWSGI does not vacuum on the die-on-term stop
}

swap_restart
