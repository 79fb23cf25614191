# One handler (provisioner/engine/handlers.py): its check, its action and the action's proof. A
# failed check rolls the notifying changes back and the action never runs; a failed action or proof
# explains why, rolls back and runs the action again on the old state. Once the action has run on
# what is on disk, the handler's pending marker goes. ACTED=1: a change of this run performed the
# action (started the service after what notified it), so the first attempt only proves it.
# Given: RUN_DIR, PENDING_MARKER, ACTED; functions check, act, prove, explain and rollback (which calls
# `restore` for each change to undo).
# Output: the handler's; `explain` ... `end` around the explanation. Exit: $EXIT_*.

# restore N PATH...: put back the paths change N saved (apply.sh `save`)
restore() {
    n=$1
    shift
    saved=0
    for path in "$@"; do
        copy="$RUN_DIR/step$n-$saved"
        if [ -e "$copy.absent" ]; then
            rm -f "$path"
        elif [ -e "$copy" ] || [ -L "$copy" ]; then
            cp -a "$copy" "$path.provision-rb" && mv -fT "$path.provision-rb" "$path"
        fi
        saved=$((saved + 1))
    done
}

proof() {
    act && prove
}

if ! check; then
    rollback
    exit "$EXIT_CHECK_FAILED"
fi
first_proof() {
    if [ "$ACTED" = 1 ]; then prove; else proof; fi
}

if ! first_proof; then
    mark explain
    explain
    mark end
    rollback
    if proof >/dev/null 2>&1; then
        rm -f "$PENDING_MARKER"
        exit "$EXIT_ROLLED_BACK"
    fi
    exit "$EXIT_ROLLBACK_FAILED"
fi
rm -f "$PENDING_MARKER"
