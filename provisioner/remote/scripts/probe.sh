# The probe (provisioner/engine/facts.py): every fact a plan needs, in ONE remote script.
# Given: RESOURCES, the number of probe_N functions (each resource's probe); APT_STAMP, PENDING_DIR;
# HEALTH=1 to run the `health` function alongside (its answer verifies a deploy that changes
# nothing); LOCK_FILE when the deploy lock (lock.sh) must be held.
# Output: `system` (os-release, machine, clock; apt lists' age; pending handlers; nginx version),
# `fact N` per resource, then `health` (exit code, answer).

if [ -n "$LOCK_FILE" ] && [ -z "$PROVISION_LOCKED" ]; then
    cat "$LOCK_FILE.owner" 2>/dev/null
    exit "$EXIT_LOCKED"
fi

# What is at a path: "link TARGET", "dir MODE OWNER GROUP", "file MODE OWNER GROUP SHA256" (with
# --content, then an empty line and the content in base64), or "absent".
stat_path() {
    if [ -L "$1" ]; then
        echo "link $(readlink "$1")"
    elif [ -d "$1" ]; then
        echo "dir $(stat -c '%a %U %G' "$1")"
    elif [ -f "$1" ]; then
        echo "file $(stat -c '%a %U %G' "$1") $(sha256sum <"$1" | cut -c1-64)"
        if [ "$2" = --content ]; then
            echo
            base64 -w0 <"$1"
            echo
        fi
    else
        echo absent
    fi
}

# A systemd service: "enabled=STATE" (systemctl is-enabled) and "active=STATE" (is-active).
service_state() {
    echo "enabled=$(systemctl is-enabled "$1" 2>/dev/null | tail -n1)"
    echo "active=$(systemctl is-active "$1" 2>/dev/null)"
}

if [ "$HEALTH" = 1 ]; then
    health_out=$(mktemp)
    health >"$health_out" 2>&1 &
    health_pid=$!
fi

mark system
# shellcheck disable=SC1091  # the host's file
. /etc/os-release 2>/dev/null
echo "$ID" "$VERSION_ID" "${VERSION_CODENAME:-none}" "$(uname -m)" "$(date +%s)"
# shellcheck disable=SC2012  # apt's file names are plain
newest=$(ls -t /var/lib/apt/lists/*Release "$APT_STAMP" 2>/dev/null | head -n1)
if [ -n "$newest" ]; then stat -c %Y "$newest"; else echo never; fi
# shellcheck disable=SC2012  # the markers are named by provision
echo "pending $(ls "$PENDING_DIR" 2>/dev/null | tr '\n' ' ')"
# nginx's version (empty before it is installed): the site's templates differ on nginx >= 1.25.1
echo "nginx $(nginx -v 2>&1 | sed -n 's|^nginx version: nginx/||p')"

i=0
while [ "$i" -lt "$RESOURCES" ]; do
    mark fact "$i"
    "probe_$i" 2>/dev/null
    i=$((i + 1))
done

if [ "$HEALTH" = 1 ]; then
    wait "$health_pid"
    health_rc=$?
    mark health
    echo "$health_rc"
    cat "$health_out"
    rm -f "$health_out"
fi
