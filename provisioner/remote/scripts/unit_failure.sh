# Why a unit did not come up after a restart: the last Python traceback in its journal since the
# restart (SINCE, set by the handler's action), then the journal's last lines. journald stores a dying
# service's output a moment after systemd reports the failure (seconds on a loaded host), so this
# waits up to 12 s for a traceback (8 s missed one at load 20).
# The last traceback that is not a KeyboardInterrupt (uWSGI stops the other workers with SIGINT
# when one fails to load the app) is the cause, however much was logged after it. With lazy-apps every
# worker logs its own traceback and their lines interleave: another worker's KeyboardInterrupt can end
# the traceback being read before its exception line comes, so the last exception line is also kept
# on its own and printed when the traceback printed does not hold it. A traceback that a
# KeyboardInterrupt happened while handling (the SIGINT reached a worker inside importlib's own
# `except KeyError`: "During handling of the above exception, another exception occurred") is part of
# that interrupt, not a cause: a lab run printed such a KeyError instead of the app's ImportError.
# The journal does not always keep that chain whole (a CI run under load showed the KeyError alone):
# a KeyError raised in frames that are all the interpreter's frozen import machinery is importlib's own
# cache miss, never a cause.
# Given: UNIT, SINCE (unset when the action was a start by the apply: the unit's last 300 lines).
journal() {
    if [ -n "${SINCE:-}" ]; then
        journalctl -u "$UNIT" --since "$SINCE" --no-pager -o cat
    else
        journalctl -u "$UNIT" -n 300 --no-pager -o cat
    fi
}
tries=0
while [ "$tries" -lt 60 ] && ! journal | grep -q Traceback; do
    sleep 0.2
    tries=$((tries + 1))
done
journal | awk '
/^Traceback \(most recent call last\):/ {
    in_chain = chained; chained = 0
    if (!in_chain) taken = 0      # the traceback taken last is no context of this one
    tb = $0; error_at_start = error; real = 0; next
}
/^(During handling of the above exception|The above exception was the direct cause)/ { if (taken) chained = 1; next }
/^[A-Za-z_][A-Za-z0-9_.]*(Error|Exception)(: |$)/ { error = $0 }
tb != "" {
    tb = tb "\n" $0
    if ($0 ~ /^  File "/ && $0 !~ /^  File "<frozen /) real = 1
    if ($0 !~ /^[ \t]/) {
        if ($0 ~ /^KeyboardInterrupt/) {
            if (in_chain && taken) { last = last_before; error = error_before; taken = 0 }  # the interrupt context
        } else if (!real && $0 ~ /^KeyError: /) {
            error = error_at_start                                  # importlib: its own cache miss
        } else {
            last_before = last; error_before = error_at_start; last = tb; taken = 1
        }
        tb = ""
    }
}
END {
    if (last != "") print last
    if (error != "" && index(last, error) == 0) print error
}'
journal | tail -n 12
