# The app's kept releases (provisioner/resources/release_meta.py): `current ID`, then for each
# complete release `release ID INSTALLED_EPOCH` followed by its `live EPOCH BY` and `meta JSON` lines
# when it has those files.
# Given: ROOT (app_root), META_FILE, LIVE_FILE.
printf 'current %s\n' "$(basename "$(readlink "$ROOT/current" || true)")"
for complete in "$ROOT"/releases/*/.complete; do
    [ -f "$complete" ] || continue
    dir=$(dirname "$complete")
    printf 'release %s %s\n' "$(basename "$dir")" "$(stat -c %Y "$complete")"
    if [ -s "$dir/$LIVE_FILE" ]; then printf 'live %s\n' "$(head -n 1 "$dir/$LIVE_FILE")"; fi
    if [ -s "$dir/$META_FILE" ]; then printf 'meta %s\n' "$(head -n 1 "$dir/$META_FILE")"; fi
done
