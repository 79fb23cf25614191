# What the host holds of the app's releases (provisioner/resources/release.py), in sections:
#   where `current` points
#   each complete release: its id and its venv key, one a line
#   --
#   each complete venv's key
#   --
#   the store's file names, unless the current release is TREE (then nothing is to be sent)
# Given: ROOT (app_root), TREE (the app's files, as planned).
readlink "$ROOT/current"
echo
for complete in "$ROOT"/releases/*/.complete; do
    if [ -f "$complete" ]; then
        release=${complete%/.complete}
        echo "${release##*/} $(basename "$(readlink "$release/venv")")"
    fi
done
echo --
for complete in "$ROOT"/venvs/*/.complete; do
    if [ -f "$complete" ]; then basename "${complete%/.complete}"; fi
done
echo --
current_tree=
if [ -f "$ROOT/current/.tree" ]; then read -r current_tree <"$ROOT/current/.tree"; fi
if [ "$current_tree" != "$TREE" ] && [ -d "$ROOT/store" ]; then ls -1 "$ROOT/store"; fi
