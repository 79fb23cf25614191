# Delete old releases: all but the new one, the one it replaces, and the newest others before
# DELETE_FROM (the position, newest first, from which the others go).
# Given: RELEASES (the directory), NEW, PREVIOUS (empty on a first deploy), DELETE_FROM.
(
    cd "$RELEASES" || exit 1
    # shellcheck disable=SC2010,SC2012  # release ids are hex
    ls -1t | grep -vxF -e "$NEW" -e "${PREVIOUS:-$NEW}" | tail -n +"$DELETE_FROM" | xargs -r rm -rf --
)
