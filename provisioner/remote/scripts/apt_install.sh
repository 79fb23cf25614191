# Install Debian packages (provisioner/resources/apt.py), after one `apt-get update` per run when
# the lists are older than the role allows. Any version will do: upgrades are the admin's decision.
# Given: PACKAGES (names, space-separated), UPDATE=1 when the lists are stale, LOCK_TIMEOUT,
# RUN_DIR, APT_STAMP.
export DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a
if [ "$UPDATE" = 1 ] && [ ! -e "$RUN_DIR/apt-updated" ]; then
    apt-get -o DPkg::Lock::Timeout="$LOCK_TIMEOUT" -q --error-on=any update || exit 1
    touch "$APT_STAMP" "$RUN_DIR/apt-updated"
fi
# shellcheck disable=SC2086  # one word per package
apt-get -o DPkg::Lock::Timeout="$LOCK_TIMEOUT" -q -y -o Dpkg::Options::=--force-confdef \
    -o Dpkg::Options::=--force-confold install --no-install-recommends $PACKAGES
