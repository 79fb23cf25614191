"""Make a release directory from its manifest (provisioner/resources/release_build.py): directories,
hard links to the store's files, symlinks. Run by release_install.sh with python3 on the host: one
process for every file, where a shell loop would start one `ln` each.

argv: MANIFEST STORE TARGET. Writes TARGET/.tree (what the probe compares) last."""

import json
import os
import sys

manifest_path, store, target = sys.argv[1:4]
with open(manifest_path) as f:
    manifest = json.load(f)
os.makedirs(target, mode=0o755)
for kind, path, arg in manifest["entries"]:
    where = os.path.join(target, path)
    if kind == "d":
        os.makedirs(where, mode=0o755, exist_ok=True)
    elif kind == "f":
        os.link(os.path.join(store, arg), where)
    elif kind == "l":
        os.symlink(arg, where)
    else:
        sys.exit(f"release_link: unknown entry kind {kind!r} in {manifest_path}")
with open(os.path.join(target, ".tree"), "w") as f:
    f.write(manifest["tree"] + "\n")
