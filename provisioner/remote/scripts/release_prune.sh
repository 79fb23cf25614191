# Delete old releases: all but the new one, the one it replaces, and the newest others before
# DELETE_FROM (the position, newest first, from which the others go). Then what no kept release
# uses any more: venvs no release links to, and store files no release holds a hard link to.
# Given: ROOT (app_root), NEW, PREVIOUS (empty on a first deploy), DELETE_FROM.
(
    cd "$ROOT/releases" || exit 1
    # shellcheck disable=SC2010,SC2012  # release ids are hex
    ls -1t | grep -vxF -e "$NEW" -e "${PREVIOUS:-$NEW}" | tail -n +"$DELETE_FROM" | xargs -r rm -rf --
)
for venv in "$ROOT"/venvs/*; do
    [ -d "$venv" ] || continue
    used=
    for link in "$ROOT"/releases/*/venv; do
        if [ "$(readlink "$link")" = "../../venvs/${venv##*/}" ]; then used=1; fi
    done
    if [ -z "$used" ]; then rm -rf "$venv"; fi
done
if [ -d "$ROOT/store" ]; then find "$ROOT/store" -type f -links 1 -delete; fi
