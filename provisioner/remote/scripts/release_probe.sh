# The app's releases on the host (provisioner/resources/release.py): where `current` points, then
# the id of every complete release, one a line.
# Given: ROOT (app_root).
readlink "$ROOT/current"
echo
for complete in "$ROOT"/releases/*/.complete; do
    if [ -f "$complete" ]; then basename "$(dirname "$complete")"; fi
done
