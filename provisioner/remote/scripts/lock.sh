# The host's deploy lock (provisioner/engine/deploy.py), taken in the session's own shell so that it
# is held for as long as the connection lives (fd 9). PROVISION_LOCKED=1 when it was taken.
# Given: LOCK_FILE, LOCK_TIMEOUT (seconds to wait), LOCK_OWNER (who asks, for the one who waits).
exec 9>>"$LOCK_FILE"
# shellcheck disable=SC2034  # read by probe.sh, which runs in this shell's subshells
if flock -w "$LOCK_TIMEOUT" 9; then
    PROVISION_LOCKED=1
    echo "$LOCK_OWNER since $(date '+%F %T')" >"$LOCK_FILE.owner"
else
    PROVISION_LOCKED=
fi
