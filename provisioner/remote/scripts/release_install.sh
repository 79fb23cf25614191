# Install a release from $UPLOAD (provisioner/resources/release_transfer.py: its manifest and the files
# the store lacked) as ROOT/releases/ID: the new files join ROOT/store, the release's files are hard
# links to the store (release_link.py), its venv is ROOT/venvs/VENV, built only when BUILD_VENV=1 and
# not complete (/usr/bin/python3: the uWSGI plugin links that libpython). `.complete` marks a release
# that may be switched to.
# Given: ROOT, ID, VENV, REQUIREMENTS (the requirements file inside the release), BUILD_VENV, LINK_PY
# (release_link.py's text), UPLOAD.
STAGE=$ROOT/.incoming
TARGET=$ROOT/releases/$ID
rm -rf "$TARGET" "$STAGE"
mkdir -p "$ROOT/store" "$ROOT/venvs" "$STAGE"
chmod 0700 "$ROOT/store"  # its files are read through the releases' hard links
tar -xf "$UPLOAD" -C "$STAGE" --no-same-owner
rm -f "$UPLOAD"
if [ -d "$STAGE/objects" ]; then
    find "$STAGE/objects" -name '*.gz' -exec gzip -d {} +
    find "$STAGE/objects" -type f -exec chmod 0644 {} +
    find "$STAGE/objects" -type f -name '*-x' -exec chmod 0755 {} +
    find "$STAGE/objects" -type f -exec mv -f -t "$ROOT/store" {} +
fi
python3 -c "$LINK_PY" "$STAGE/manifest.json" "$ROOT/store" "$TARGET"
venv_dir=$ROOT/venvs/$VENV
if [ ! -f "$venv_dir/.complete" ]; then
    if [ "$BUILD_VENV" != 1 ]; then
        echo "venv $VENV is not on the host and its wheels were not sent; deploy again" >&2
        exit 1
    fi
    rm -rf "$venv_dir"
    if [ -n "$(ls -A "$TARGET/wheels")" ]; then
        /usr/bin/python3 -m venv "$venv_dir"
        "$venv_dir/bin/pip" install -q --no-index --no-cache-dir --disable-pip-version-check \
            --find-links "$TARGET/wheels" -r "$TARGET/$REQUIREMENTS"
    else  # nothing to install: no pip in it either (~0.4 s instead of ~10 s)
        /usr/bin/python3 -m venv --without-pip "$venv_dir"
    fi
    chmod -R go-w "$venv_dir"
    touch "$venv_dir/.complete"
fi
ln -sfn "../../venvs/$VENV" "$TARGET/venv"
rm -rf "$STAGE"
touch "$TARGET/.complete"
