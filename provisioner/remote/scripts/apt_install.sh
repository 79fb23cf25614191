# Install Debian packages (provisioner/resources/apt.py), after one `apt-get update` per run when
# the lists are older than the role allows. Any version will do: upgrades are the admin's decision.
# Given: PACKAGES (names, space-separated), UPDATE=1 when the lists are stale, LOCK_TIMEOUT,
# UPDATE_TIMEOUT, UPDATE_ATTEMPTS, RUN_DIR, APT_STAMP.
#
# apt-get update has no overall timeout: when a mirror or proxy cuts an index short it can wait
# forever (seen with a caching proxy serving one InRelease to several hosts in the same second). So
# each attempt gets UPDATE_TIMEOUT seconds, then is stopped and tried again; stopping it is safe
# (it only writes the lists). It does not wait for a lock (measured: with the lists lock held it
# fails at once), so the pause between attempts grows: 5 s, 10 s, ... apt-get install is never
# stopped: dpkg may be half-way; it waits up to LOCK_TIMEOUT for dpkg's lock.
export DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a
if [ "$UPDATE" = 1 ] && [ ! -e "$RUN_DIR/apt-updated" ]; then
    attempt=1
    until timeout -k 10 "$UPDATE_TIMEOUT" apt-get -q --error-on=any update; do
        status=$?
        [ "$status" = 124 ] && why="took over $UPDATE_TIMEOUT s" || why="failed (exit $status)"
        if [ "$attempt" -ge "$UPDATE_ATTEMPTS" ]; then
            echo "apt-get update $why, attempt $attempt of $UPDATE_ATTEMPTS: giving up" >&2
            exit 1
        fi
        echo "apt-get update $why, attempt $attempt of $UPDATE_ATTEMPTS: trying again" >&2
        sleep $((attempt * 5))
        attempt=$((attempt + 1))
    done
    touch "$APT_STAMP" "$RUN_DIR/apt-updated"
fi
# shellcheck disable=SC2086  # one word per package
apt-get -o DPkg::Lock::Timeout="$LOCK_TIMEOUT" -q -y -o Dpkg::Options::=--force-confdef \
    -o Dpkg::Options::=--force-confold install --no-install-recommends $PACKAGES
