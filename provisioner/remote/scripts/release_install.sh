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
    # No pip in the venv: ensurepip would take ~3 s to copy it in. With wheels to install, the pip
    # that installs them runs from Debian's wheel of it (python3-venv brings it: ensurepip's source).
    /usr/bin/python3 -m venv --without-pip "$venv_dir"
    if [ -n "$(ls -A "$TARGET/wheels")" ]; then
        pip_wheel=
        for wheel in /usr/share/python-wheels/pip-*.whl; do
            [ -f "$wheel" ] && pip_wheel=$wheel
        done
        if [ -z "$pip_wheel" ]; then
            echo "no pip wheel in /usr/share/python-wheels to install the app's wheels with: apt-get install python3-pip-whl" >&2
            exit 1
        fi
        "$venv_dir/bin/python" "$pip_wheel/pip" install -q --no-index --no-cache-dir --disable-pip-version-check \
            --no-compile --find-links "$TARGET/wheels" -r "$TARGET/$REQUIREMENTS"
        # Compiled here, as the app user could not write __pycache__ at each start: on every core at
        # once (pip compiles one file at a time), the packages' own test suites left out (nothing
        # imports them at run time; one that is imported compiles in memory, as before).
        "$venv_dir/bin/python" -m compileall -qq -j 0 -x '/tests?/' "$venv_dir/lib" || :
    fi
    chmod -R go-w "$venv_dir"
    touch "$venv_dir/.complete"
fi
ln -sfn "../../venvs/$VENV" "$TARGET/venv"
rm -rf "$STAGE"
touch "$TARGET/.complete"
