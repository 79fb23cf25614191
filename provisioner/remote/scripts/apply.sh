# Every change of a host in ONE script (provisioner/engine/apply.py), in declared order, stopping at
# the first failure. Before a change touches a path, the path is saved under RUN_DIR, so a handler
# whose check fails or whose service does not come back can put it back (restore, in handler.sh).
# Given: RUN_DIR, PENDING_DIR, UPLOAD_DIR; FRESH=1 for the first batch of a run; functions change_N
# (the changes) and `changes`, which calls `step` for each.
# Output: `step N`, the change's output, `ended N EXIT_CODE`.

# save PATH COPY: a copy of PATH for a rollback, or a note that there was nothing at PATH
save() {
    if [ -e "$1" ] || [ -L "$1" ]; then cp -a "$1" "$2"; else : >"$2.absent"; fi
}

# step N UPLOAD PATH... -- MARKER...: save each PATH, run change_N (with set -e) and, when it
# succeeded, touch the pending markers of the handlers it notifies
step() {
    n=$1
    # shellcheck disable=SC2034  # read by change_N
    UPLOAD=$2
    shift 2
    mark step "$n"
    saved=0
    while [ "$1" != -- ]; do
        save "$1" "$RUN_DIR/step$n-$saved"
        saved=$((saved + 1))
        shift
    done
    shift
    (
        set -e
        "change_$n"
    )
    rc=$?
    mark ended "$n" "$rc"
    if [ "$rc" -ne 0 ]; then
        rm -rf "$UPLOAD_DIR"
        exit 1
    fi
    if [ $# -gt 0 ]; then touch "$@"; fi
}

if [ "$FRESH" = 1 ]; then rm -rf "$RUN_DIR"; fi
mkdir -p "$RUN_DIR" "$PENDING_DIR" && chmod 0700 "$RUN_DIR" "$PENDING_DIR" || exit 1
changes
rm -rf "$UPLOAD_DIR"
