# The deploy's last step (provisioner/engine/verify.py): the site answers through nginx.
# Given: functions health (the stack's check) and explain (its logs, when the check fails).
# Output: the answer; `explain` and the logs when it failed.
if ! health; then
    mark explain
    explain
    exit "$EXIT_FAILED"
fi
