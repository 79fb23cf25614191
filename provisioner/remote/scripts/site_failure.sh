# Why a site does not answer: the end of its error log and of its app's journal.
# Given: ERROR_LOG, UNIT.
echo "--- $ERROR_LOG"
tail -n 15 "$ERROR_LOG" 2>/dev/null
echo "--- journal of $UNIT"
journalctl -u "$UNIT" -n 15 --no-pager -o cat
