# A handler's action: restart a systemd unit, noting when (unit_failure.sh reads the journal from then).
# Given: UNIT.
# shellcheck disable=SC2034  # read by unit_failure.sh
SINCE=$(date '+%F %T')
systemctl restart "$UNIT"
