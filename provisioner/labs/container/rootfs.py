"""The shared, read-only root filesystem of the lab hosts of one Debian release (mmdebstrap).

Cached as /var/cache/provision/lab-rootfs-<release>-<recipe-hash>/, one per release, and rebuilt
only when that release's recipe (this file's settings plus the lab SSH public key) changes. Built
into a temp dir, then renamed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from provisioner.errors import UserError
from provisioner.labs import common

from . import proxy, state
from .state import CACHE_ROOT, KEY_FILE

RELEASES = {"bookworm": "Debian 12", "trixie": "Debian 13"}
DEFAULT_RELEASE = "bookworm"
PACKAGES = ["systemd", "systemd-sysv", "dbus", "libpam-systemd", "openssh-server", "sudo",
            "python3", "iproute2"]
ASKPASS_PASSWORD = "lab-password"
# hosts resolve "apt-proxy" through their /etc/hosts (written per host: the instance's gateway)
PROXY_CONF = f'Acquire::http::Proxy "http://apt-proxy:{proxy.PORT}/";\n'
RECIPE_VERSION = 1

_CUSTOMIZE = r"""#!/bin/sh
# mmdebstrap customize hook: $1 is the new root
set -eu
R="$1"
PUB="$(cat "$LAB_PUBKEY_FILE")"
chroot "$R" useradd --create-home --shell /bin/bash deploy
chroot "$R" useradd --create-home --shell /bin/bash askpass
echo "askpass:$LAB_ASKPASS_PASSWORD" | chroot "$R" chpasswd
printf 'deploy ALL=(ALL:ALL) NOPASSWD: ALL\n' > "$R/etc/sudoers.d/lab-deploy"
printf 'askpass ALL=(ALL:ALL) ALL\n' > "$R/etc/sudoers.d/lab-askpass"
chmod 0440 "$R/etc/sudoers.d/lab-deploy" "$R/etc/sudoers.d/lab-askpass"
for u in root deploy askpass; do
  h=$(chroot "$R" getent passwd "$u" | cut -d: -f6)
  mkdir -p "$R$h/.ssh"
  printf '%s\n' "$PUB" > "$R$h/.ssh/authorized_keys"
  chmod 700 "$R$h/.ssh"; chmod 600 "$R$h/.ssh/authorized_keys"
  chroot "$R" chown -R "$u:$u" "$h/.ssh"
done
# host keys are per host (copied in at host creation), machine-id is made at boot
rm -f "$R"/etc/ssh/ssh_host_*
: > "$R/etc/machine-id"
rm -f "$R/var/lib/dbus/machine-id"
# apt: only through the lab's apt proxy (replaces the build-time proxy setting)
rm -f "$R/etc/apt/apt.conf.d/99mmdebstrap"
printf '%s' "$LAB_PROXY_CONF" > "$R/etc/apt/apt.conf.d/01lab-proxy"
printf 'APT::Install-Recommends "false";\n' > "$R/etc/apt/apt.conf.d/02lab-no-recommends"
# quiet, quick boots: no timers that hit the network, no getty on the console
for u in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer \
         console-getty.service getty@.service; do
  ln -sf /dev/null "$R/etc/systemd/system/$u"
done
printf 'lab\n' > "$R/etc/hostname"
rm -f "$R/etc/resolv.conf"; : > "$R/etc/resolv.conf"
"""


def check_release(release: str) -> str:
    if release not in RELEASES:
        raise UserError(f"unknown lab release {release!r}: the lab builds {', '.join(RELEASES)}",
                        f"use --release {DEFAULT_RELEASE} (the default) or --release trixie")
    return release


def sources(release: str) -> list[str]:
    return [
        f"deb http://deb.debian.org/debian {release} main",
        f"deb http://deb.debian.org/debian {release}-updates main",
        f"deb http://deb.debian.org/debian-security {release}-security main",
    ]


def recipe(release: str) -> dict:
    return {
        "version": RECIPE_VERSION,
        "suite": release,
        "variant": "minbase",
        "hooks": "merged-usr",
        "packages": PACKAGES,
        "sources": sources(release),
        "customize": _CUSTOMIZE,
        "proxy_conf": PROXY_CONF,
        "askpass_password": ASKPASS_PASSWORD,
        "pubkey": Path(str(KEY_FILE) + ".pub").read_text().strip(),
    }


def path(release: str) -> Path:
    digest = hashlib.sha256(json.dumps(recipe(release), sort_keys=True).encode()).hexdigest()[:12]
    return CACHE_ROOT / f"lab-rootfs-{release}-{digest}"


def ensure_key() -> Path:
    """The lab SSH key (ed25519), generated once."""
    if not KEY_FILE.exists() or not Path(str(KEY_FILE) + ".pub").exists():
        KEY_FILE.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(KEY_FILE.parent, 0o700)
        tmp = KEY_FILE.with_name(f".id_ed25519.tmp{os.getpid()}")
        for p in (tmp, Path(str(tmp) + ".pub")):
            p.unlink(missing_ok=True)
        common.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "provision-lab", "-f", str(tmp)])
        os.replace(str(tmp) + ".pub", str(KEY_FILE) + ".pub")
        os.replace(tmp, KEY_FILE)
    os.chmod(KEY_FILE, 0o600)
    return KEY_FILE


def ensure(release: str = DEFAULT_RELEASE, log=print) -> Path:
    """Return the cached rootfs of `release` for the current recipe, building it first if needed.

    Needs the apt proxy on 127.0.0.1 (the caller starts it) so the build's downloads are cached.
    """
    ensure_key()
    target = path(check_release(release))
    if (target / ".lab-rootfs-complete").exists():
        return target
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    tmp = CACHE_ROOT / f".{target.name}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    hook = CACHE_ROOT / f".lab-rootfs-customize.{os.getpid()}.sh"
    hook.write_text(_CUSTOMIZE)
    os.chmod(hook, 0o755)
    env = dict(os.environ, LAB_PUBKEY_FILE=str(KEY_FILE) + ".pub", LAB_ASKPASS_PASSWORD=ASKPASS_PASSWORD,
               LAB_PROXY_CONF=PROXY_CONF)
    cmd = ["mmdebstrap", "--mode=root", "--variant=minbase", "--format=directory",
           "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
           f"--include={','.join(PACKAGES)}",
           f"--aptopt=Acquire::http::Proxy \"{proxy.url_for('127.0.0.1')}\"",
           f"--customize-hook={hook}",
           release, str(tmp), *sources(release)]
    log(f"building the {RELEASES[release]} ({release}) lab root filesystem (once, ~30 s) into {target}")
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"mmdebstrap failed ({p.returncode}):\n{p.stderr[-3000:]}")
        (tmp / ".lab-rootfs-complete").write_text(json.dumps(recipe(release), indent=1) + "\n")
        os.replace(tmp, target)
    finally:
        hook.unlink(missing_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log(f"root filesystem built in {time.monotonic() - t0:.1f} s")
    _prune(keep=target, release=release)
    return target


def _prune(keep: Path, release: str) -> None:
    """Remove rootfs builds of the release's older recipes (and of the unkeyed ones of versions
    that built only Debian 12) that no lab instance still uses."""
    used = {keep.name}
    for inst in state.all_instances():
        st = state.load_state(inst) or {}
        for r in [st.get("rootfs")] + [h.get("rootfs") for h in st.get("hosts", {}).values()]:
            if r:
                used.add(Path(r).name)
    for d in CACHE_ROOT.glob("lab-rootfs-*"):
        ours = d.name.startswith(f"lab-rootfs-{release}-") or "-" not in d.name.removeprefix("lab-rootfs-")
        if ours and d.is_dir() and d.name not in used:
            shutil.rmtree(d, ignore_errors=True)
