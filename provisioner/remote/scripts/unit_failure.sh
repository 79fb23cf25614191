# Why a unit did not come up after restart_unit.sh: the last Python traceback in its journal since
# the restart, then the journal's last lines. journald stores a dying service's output a moment
# after systemd reports the failure (seconds on a loaded host), so this waits up to 12 s for a
# traceback (8 s missed one at load 20).
# The last traceback that is not a KeyboardInterrupt (uWSGI stops the other workers with SIGINT
# when one fails to load the app) is the cause, however much was logged after it. With lazy-apps every
# worker logs its own traceback and their lines interleave: another worker's KeyboardInterrupt can end
# the traceback being read before its exception line comes, so the last exception line is also kept
# on its own and printed when the traceback printed does not hold it.
# Given: UNIT, SINCE.
journal() {
    journalctl -u "$UNIT" --since "$SINCE" --no-pager -o cat
}
tries=0
while [ "$tries" -lt 60 ] && ! journal | grep -q Traceback; do
    sleep 0.2
    tries=$((tries + 1))
done
journal | awk '
/^Traceback \(most recent call last\):/ { tb = $0; next }
/^[A-Za-z_][A-Za-z0-9_.]*(Error|Exception)(: |$)/ { error = $0 }
tb != "" {
    tb = tb "\n" $0
    if ($0 !~ /^[ \t]/) { if ($0 !~ /^KeyboardInterrupt/) last = tb; tb = "" }
}
END {
    if (last != "") print last
    if (error != "" && index(last, error) == 0) print error
}'
journal | tail -n 12
