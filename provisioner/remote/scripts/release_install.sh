# Install the release shipped as $UPLOAD (provisioner/resources/release_build.py) into TARGET: its
# app, and a venv with its wheelhouse installed offline (/usr/bin/python3: the uWSGI plugin links
# that libpython). `.complete` marks a release that may be switched to.
# Given: TARGET, REQUIREMENTS (the requirements file inside the release), UPLOAD.
rm -rf "$TARGET"
mkdir -p "$TARGET"
tar -xzf "$UPLOAD" -C "$TARGET"
/usr/bin/python3 -m venv "$TARGET/venv"
"$TARGET/venv/bin/pip" install -q --no-index --no-cache-dir --disable-pip-version-check \
    --find-links "$TARGET/wheels" -r "$TARGET/$REQUIREMENTS"
chown -R root:root "$TARGET"
chmod -R go-w "$TARGET"
touch "$TARGET/.complete"
