# The session's runner (provisioner/remote/session.py), sent with every script to the one remote
# shell of a connection: provision_script runs in a subshell with stdin closed, and its output goes
# to a root-only file that is sent when it has ended, so a controller that goes away mid-script
# (Ctrl-C, kill -9, a dropped link) never kills it half-way (e.g. inside dpkg) with SIGPIPE.
# $1: the end marker, followed on its line by the exit code.
provision_run() {
    provision_out=$(mktemp) || provision_out=/dev/stdout
    ( provision_script ) </dev/null >"$provision_out" 2>&1
    provision_rc=$?
    if [ "$provision_out" != /dev/stdout ]; then
        cat "$provision_out"
        rm -f "$provision_out"
    fi
    printf '\n%s %s\n' "$1" "$provision_rc"
}
