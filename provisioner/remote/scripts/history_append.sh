# Append one entry to the host's deploy history (provisioner/engine/history.py), keeping it bounded:
# past KEEP + KEEP/10 lines, only the last KEEP stay (so the file is rewritten once in KEEP/10 entries).
# The entry ends with the release each app's `current` link names now.
# Given: FILE, KEEP, ENTRY (a JSON object without its closing brace), LINKS (current links, one a line).
# FILE is in a directory of its own, made root-only here (its parent, /var/lib/provision, holds the
# ACME webroot that nginx must reach).
mkdir -p "$(dirname "$FILE")" && chmod 0700 "$(dirname "$FILE")" || exit 1
current=""
for link in $LINKS; do
    id=$(basename "$(readlink "$link" || true)")
    current="$current${current:+, }\"$id\""
done
(
    flock -w 30 8 || exit 1
    printf '%s, "current": [%s]}\n' "$ENTRY" "$current" >>"$FILE"
    chmod 0600 "$FILE"
    if [ "$(wc -l <"$FILE")" -gt $((KEEP + KEEP / 10)) ]; then
        tail -n "$KEEP" "$FILE" >"$FILE.tmp" && mv -f "$FILE.tmp" "$FILE"
    fi
) 8>>"$FILE.lock"
