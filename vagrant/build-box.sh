#!/bin/bash
# Build the Debian 12 (bookworm) Vagrant box for the libvirt provider, locally, from Debian packages.
# No Vagrant Cloud needed: only a Debian mirror. Needs root, a loop device and:
#   apt-get install mmdebstrap extlinux fdisk qemu-utils e2fsprogs vagrant
#
# Usage: vagrant/build-box.sh [--force] [--print-path]
#   --print-path  print the .box path this recipe produces and exit (no build)
#   --force       rebuild even if the cached box exists
# Output (cached; rebuilt only when this file's content changes, the recipe id is its sha256):
#   /var/cache/provision/box/provision-debian12-<recipe>.box   (tar: box.img metadata.json Vagrantfile)
#   /var/cache/provision/box/provision-debian12-<recipe>.json  (catalog: `vagrant box add FILE.json`
#                                                               adds it as provision/debian12 12.<n>)
# The host is BARE on purpose (no nginx/uwsgi): deploying those is the job of `provision deploy`.
# Contents: linux-image-cloud-amd64 + extlinux on one MBR partition (ext4 without 64bit: extlinux
# cannot read it), systemd (networkd DHCP on en*/eth*, resolved), openssh-server, sudo, python3,
# iproute2, curl; user vagrant (Vagrant's insecure public key, NOPASSWD sudo); empty machine-id (each
# VM gets its own, so its own DHCP lease); ed25519+ecdsa host keys made at first boot (RSA is slow
# under TCG); apt-daily timers masked; apt uses the VM lab's proxy when that answers, else goes direct.
set -euo pipefail

SELF=$(readlink -f "$0")
RECIPE=$(sha256sum "$SELF" | cut -c1-12)
CACHE=${PROVISION_BOX_CACHE:-/var/cache/provision/box}
BOX_NAME=provision/debian12
BOX_VERSION="12.$((16#${RECIPE:0:8}))"
BOX="$CACHE/provision-debian12-$RECIPE.box"
CATALOG="$CACHE/provision-debian12-$RECIPE.json"
SUITE=bookworm
MIRROR=${PROVISION_BOX_MIRROR:-http://deb.debian.org/debian}  # used for the build only
DISK_GB=8
# The VM lab's apt proxy (provisioner/labs/vm/config.py: APT_PROXY_ADDR/APT_PROXY_PORT; a unit test checks they match)
APT_PROXY_ADDR=10.198.213.1
APT_PROXY_PORT=3152
VAGRANT_PUB=${VAGRANT_PUB:-$(ls /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub 2>/dev/null | head -n1)}

force=0
for arg in "$@"; do
  case "$arg" in
    --print-path) echo "$BOX"; exit 0 ;;
    --force) force=1 ;;
    -h|--help) sed -n '2,19p' "$SELF"; exit 0 ;;
    *) echo "build-box.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

if [ -s "$BOX" ] && [ -s "$CATALOG" ] && [ "$force" = 0 ]; then
  echo "box: cached $BOX"
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "build-box.sh: needs root (loop device, mount, chroot)" >&2; exit 2; }
missing=()
for tool in mmdebstrap:mmdebstrap extlinux:extlinux sfdisk:fdisk qemu-img:qemu-utils mkfs.ext4:e2fsprogs losetup:mount; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
done
[ -r /usr/lib/EXTLINUX/mbr.bin ] || missing+=(extlinux)
[ -n "$VAGRANT_PUB" ] && [ -r "$VAGRANT_PUB" ] || missing+=(vagrant)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "build-box.sh: missing apt packages: ${missing[*]} (fix: apt-get install -y ${missing[*]})" >&2
  exit 2
fi

# Build in a private mount namespace: a mount namespace that someone else creates while our disk is
# mounted (`ip netns exec`, nspawn, unshare: root mounts are private without systemd) would keep a
# copy of the mount, our umount would not flush the filesystem, and the image would miss files.
if [ -z "${PROVISION_BOX_PRIVATE_MOUNTS:-}" ]; then
  command -v unshare >/dev/null || { echo "build-box.sh: unshare (util-linux) is missing" >&2; exit 2; }
  PROVISION_BOX_PRIVATE_MOUNTS=1 exec unshare --mount --propagation private bash "$SELF" "$@"
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/.build.lock"
flock 9
if [ -s "$BOX" ] && [ -s "$CATALOG" ] && [ "$force" = 0 ]; then
  echo "box: cached $BOX (built by a concurrent run)"
  exit 0
fi

WORK=$(mktemp -d "$CACHE/build.XXXXXX")
MNT="$WORK/mnt"
RAW="$WORK/disk.raw"
LOOP=
cleanup() {
  set +e
  if mountpoint -q "$MNT" 2>/dev/null; then umount -R "$MNT" || umount -lR "$MNT"; fi
  [ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t0=$(date +%s)
echo "box: building $BOX_NAME $BOX_VERSION (recipe $RECIPE) in $WORK"

# Disk: sparse raw image, one bootable MBR partition from 1 MiB to the end.
truncate -s "${DISK_GB}G" "$RAW"
echo 'start=2048, type=83, bootable' | sfdisk -q --label dos "$RAW"
PART_OFFSET=$((2048 * 512))
PART_SIZE=$(( DISK_GB * 1024 * 1024 * 1024 - PART_OFFSET ))
# No `losetup -P`/kpartx/device-mapper on every kernel: an offset loop device is the partition.
LOOP=$(losetup --find --show --offset "$PART_OFFSET" --sizelimit "$PART_SIZE" "$RAW")
ROOT_UUID=$(cat /proc/sys/kernel/random/uuid)
mkfs.ext4 -q -F -O ^64bit -L root -U "$ROOT_UUID" -E lazy_itable_init=0,lazy_journal_init=0 "$LOOP"
mkdir -p "$MNT"
mount "$LOOP" "$MNT"
rmdir "$MNT/lost+found"

# The customize hook runs with the target as $1, after all packages are installed.
CUSTOMIZE=$(cat <<'HOOK'
set -eu
T="$1"
# --- filesystem, boot ---
echo "UUID=$ROOT_UUID / ext4 errors=remount-ro 0 1" > "$T/etc/fstab"
mkdir -p "$T/boot/extlinux"
cat > "$T/usr/local/sbin/update-extlinux" <<'EOF'
#!/bin/sh
# Point extlinux at the newest installed kernel (run by /etc/kernel/postinst.d/zz-update-extlinux).
set -e
ROOT=${1:-}
kver=$(ls "$ROOT"/boot/vmlinuz-* | sed 's|.*/vmlinuz-||' | sort -V | tail -n1)
uuid=$(awk '$2 == "/" { sub("UUID=", "", $1); print $1 }' "$ROOT/etc/fstab")
cat > "$ROOT/boot/extlinux/extlinux.conf" <<CONF
DEFAULT debian
TIMEOUT 0
PROMPT 0
LABEL debian
  LINUX /boot/vmlinuz-$kver
  INITRD /boot/initrd.img-$kver
  APPEND root=UUID=$uuid ro console=tty0 console=ttyS0,115200n8 quiet
CONF
EOF
chmod 0755 "$T/usr/local/sbin/update-extlinux"
mkdir -p "$T/etc/kernel/postinst.d"
printf '#!/bin/sh\nexec /usr/local/sbin/update-extlinux\n' > "$T/etc/kernel/postinst.d/zz-update-extlinux"
chmod 0755 "$T/etc/kernel/postinst.d/zz-update-extlinux"
"$T/usr/local/sbin/update-extlinux" "$T"
extlinux --install "$T/boot/extlinux" >/dev/null
# --- identity ---
echo debian12 > "$T/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tdebian12\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > "$T/etc/hosts"
: > "$T/etc/machine-id"
rm -f "$T/var/lib/dbus/machine-id"
# --- network: DHCP on the first NIC(s) with systemd-networkd; DNS by resolved ---
mkdir -p "$T/etc/systemd/network"
printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n\n[DHCPv4]\nUseHostname=no\n' > "$T/etc/systemd/network/80-dhcp.network"
chroot "$T" systemctl enable systemd-networkd.service systemd-resolved.service >/dev/null 2>&1
chroot "$T" systemctl disable systemd-networkd-wait-online.service >/dev/null 2>&1 || true
ln -sf ../run/systemd/resolve/stub-resolv.conf "$T/etc/resolv.conf"
# --- ssh: host keys made at first boot, ed25519 + ecdsa only ---
rm -f "$T"/etc/ssh/ssh_host_*
printf 'HostKey /etc/ssh/ssh_host_ed25519_key\nHostKey /etc/ssh/ssh_host_ecdsa_key\n' > "$T/etc/ssh/sshd_config.d/10-hostkeys.conf"
cat > "$T/etc/systemd/system/ssh-hostkeys.service" <<'EOF'
[Unit]
Description=Generate SSH host keys (first boot)
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key
ExecStart=/usr/bin/ssh-keygen -q -t ecdsa -N "" -f /etc/ssh/ssh_host_ecdsa_key

[Install]
RequiredBy=ssh.service
EOF
chroot "$T" systemctl enable ssh-hostkeys.service >/dev/null 2>&1
# --- user vagrant ---
chroot "$T" useradd --create-home --shell /bin/bash --user-group vagrant
install -d -m 0700 "$T/home/vagrant/.ssh"
install -m 0600 "$VAGRANT_PUB" "$T/home/vagrant/.ssh/authorized_keys"
chroot "$T" chown -R vagrant:vagrant /home/vagrant/.ssh
echo 'vagrant ALL=(ALL) NOPASSWD: ALL' > "$T/etc/sudoers.d/vagrant"
chmod 0440 "$T/etc/sudoers.d/vagrant"
# --- apt: no timers fighting the deploy for the dpkg lock; the lab proxy when it answers ---
chroot "$T" systemctl mask apt-daily.timer apt-daily-upgrade.timer >/dev/null 2>&1
mkdir -p "$T/usr/local/lib/provision"
cat > "$T/usr/local/lib/provision/apt-proxy-detect" <<EOF
#!/bin/bash
# apt Proxy-Auto-Detect: the provision VM lab's apt proxy if it answers, else direct.
if timeout 2 bash -c 'exec 3<>/dev/tcp/$APT_PROXY_ADDR/$APT_PROXY_PORT' 2>/dev/null; then
  echo "http://$APT_PROXY_ADDR:$APT_PROXY_PORT"
else
  echo DIRECT
fi
EOF
chmod 0755 "$T/usr/local/lib/provision/apt-proxy-detect"
echo 'Acquire::http::Proxy-Auto-Detect "/usr/local/lib/provision/apt-proxy-detect";' > "$T/etc/apt/apt.conf.d/01provision-proxy"
# Under emulation apt's CPU time dominates: no Translation files, gzip (not xz) indexes (41 s -> 24 s).
printf 'Acquire::Languages "none";\nAcquire::CompressionTypes::Order:: "gz";\n' > "$T/etc/apt/apt.conf.d/02provision-fast-update"
printf 'deb http://deb.debian.org/debian bookworm main\ndeb http://deb.debian.org/debian bookworm-updates main\ndeb http://deb.debian.org/debian-security bookworm-security main\n' > "$T/etc/apt/sources.list"
rm -f "$T/etc/apt/sources.list.d/"*
HOOK
)
export ROOT_UUID VAGRANT_PUB APT_PROXY_ADDR APT_PROXY_PORT

SEC_MIRROR=${MIRROR%/debian}/debian-security
mmdebstrap --quiet --variant=apt --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  --include=linux-image-cloud-amd64,initramfs-tools,zstd,systemd,systemd-sysv,systemd-resolved,dbus,libpam-systemd,openssh-server,sudo,python3,iproute2,curl,ca-certificates,procps,less \
  --customize-hook="$CUSTOMIZE" \
  "$SUITE" "$MNT" \
  "deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" "deb $SEC_MIRROR $SUITE-security main"

# extlinux's MBR boot code (the partition is marked active above).
dd if=/usr/lib/EXTLINUX/mbr.bin of="$RAW" bs=440 count=1 conv=notrunc status=none
sync -f "$MNT"
fstrim "$MNT" >/dev/null 2>&1 || true   # free blocks become holes: a smaller image
used=$(df -h --output=used "$MNT" | tail -n1 | tr -d ' ')
sync -f "$MNT"
umount "$MNT"
losetup -d "$LOOP"
# The device must really go away (else some mount still holds the filesystem, unflushed).
for _ in $(seq 100); do
  [ -e "/sys/block/${LOOP#/dev/}/loop/backing_file" ] || break
  sleep 0.1
done
if [ -e "/sys/block/${LOOP#/dev/}/loop/backing_file" ]; then
  echo "build-box.sh: $LOOP is still busy after umount (mounted in another mount namespace?)" >&2
  exit 1
fi
LOOP=
t1=$(date +%s)
echo "box: root filesystem done ($used used) in $((t1 - t0)) s; compressing"

qemu-img convert -m 2 -c -O qcow2 "$RAW" "$WORK/box.img"
rm -f "$RAW"
cat > "$WORK/metadata.json" <<EOF
{"provider": "libvirt", "format": "qcow2", "virtual_size": $DISK_GB}
EOF
cat > "$WORK/Vagrantfile" <<'EOF'
# Box defaults (the project's vagrant/Vagrantfile sets the rest).
Vagrant.configure("2") do |config|
  config.vm.guest = :debian
  config.vm.synced_folder ".", "/vagrant", disabled: true
  config.vm.provider :libvirt do |libvirt|
    libvirt.disk_bus = "virtio"
    libvirt.nic_model_type = "virtio"
  end
end
EOF
tar -C "$WORK" -cf "$WORK/out.box" metadata.json Vagrantfile box.img
sum=$(sha256sum "$WORK/out.box" | cut -d' ' -f1)
cat > "$WORK/out.json" <<EOF
{
  "name": "$BOX_NAME",
  "description": "Debian 12 for provision's VM lab, built by vagrant/build-box.sh (recipe $RECIPE)",
  "versions": [{"version": "$BOX_VERSION", "providers": [{"name": "libvirt", "url": "file://$BOX",
    "checksum_type": "sha256", "checksum": "$sum"}]}]
}
EOF
# Publish atomically; drop boxes of older recipes.
for old in "$CACHE"/provision-debian12-*.box "$CACHE"/provision-debian12-*.json; do
  [ -e "$old" ] && [ "$old" != "$BOX" ] && [ "$old" != "$CATALOG" ] && rm -f "$old"
done
mv "$WORK/out.box" "$BOX"
mv "$WORK/out.json" "$CATALOG"
echo "box: built $BOX ($(du -h "$BOX" | cut -f1)) in $(( $(date +%s) - t0 )) s"
