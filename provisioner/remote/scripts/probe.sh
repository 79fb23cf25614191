# The probe (provisioner/engine/facts.py): every fact a plan needs, in ONE remote script.
# Given: RESOURCES, the number of probe_N functions (each resource's probe); APT_STAMP, PENDING_DIR;
# HEALTH=1 to run the `health` function alongside (its answer verifies a deploy that changes
# nothing); LOCK_FILE when the deploy lock (lock.sh) must be held; STAT_PATHS, the paths stat_path
# will be asked about, one a line: read up front by one find and one sha256sum (a fork each for all);
# SERVICES, the units service_state will be asked about, one a line: read in the background while
# the other facts are read (systemctl costs ~12 ms a call, 2 calls a unit).
# Output: `system` (os-release, machine, clock; apt lists' age; pending handlers; nginx version),
# `fact N` per resource, then `health` (exit code, answer).

if [ -n "$LOCK_FILE" ] && [ -z "$PROVISION_LOCKED" ]; then
    cat "$LOCK_FILE.owner" 2>/dev/null
    exit "$EXIT_LOCKED"
fi

NL='
'
TAB='	'

# Every path of STAT_PATHS as "PATH<TAB>TYPE<TAB>MODE OWNER GROUP<TAB>LINK TARGET" (find's %y: f, d, l,
# ...) in `scanned`, and "SHA256  PATH" of the regular files among them in `sums`: two programs started
# for all the paths, where one stat, sha256sum and cut each per path cost 4 forks a file.
scan_paths() {
    scanned="" sums=""
    [ -n "$STAT_PATHS" ] || return 0
    set -f
    old_ifs=$IFS IFS=$NL
    # shellcheck disable=SC2086  # one path a line, no globbing (set -f)
    scanned="$NL$(find $STAT_PATHS -maxdepth 0 -printf '%p\t%y\t%m %u %g\t%l\n' 2>/dev/null)$NL"
    files=""
    for entry in $scanned; do
        case $entry in *"${TAB}f$TAB"*) files="$files$NL${entry%%"$TAB"*}" ;; esac
    done
    # shellcheck disable=SC2086
    [ -z "$files" ] || sums="$NL$(sha256sum -- $files 2>/dev/null)$NL"
    IFS=$old_ifs
    set +f
}

# What is at a path: "link TARGET", "dir MODE OWNER GROUP", "file MODE OWNER GROUP SHA256" (with
# --content, then an empty line and the content in base64), or "absent". From what scan_paths read,
# else looked at now.
stat_path() {
    case $scanned in
        *"$NL$1$TAB"*)
            entry=${scanned#*"$NL$1$TAB"}
            entry=${entry%%"$NL"*}
            kind=${entry%%"$TAB"*}
            entry=${entry#*"$TAB"}
            meta=${entry%%"$TAB"*}
            target=${entry#*"$TAB"}
            ;;
        *)
            if [ -L "$1" ]; then
                kind=l target=$(readlink "$1")
            elif [ -d "$1" ]; then
                kind=d meta=$(stat -c '%a %U %G' "$1")
            elif [ -f "$1" ]; then
                kind=f meta=$(stat -c '%a %U %G' "$1")
            else
                kind=absent
            fi
            ;;
    esac
    case $kind in
        l) echo "link $target" ;;
        d) echo "dir $meta" ;;
        f)
            case $sums in
                *"  $1$NL"*)
                    sum=${sums%%"  $1$NL"*}
                    sum=${sum##*"$NL"}
                    ;;
                *) sum=$(sha256sum <"$1" | cut -c1-64) ;;
            esac
            echo "file $meta $sum"
            if [ "$2" = --content ]; then
                echo
                base64 -w0 <"$1"
                echo
            fi
            ;;
        *) echo absent ;;
    esac
}

# Every unit of SERVICES as "NAME<TAB>ENABLED<TAB>ACTIVE", one a line: one is-active for all (it
# prints a line per unit, in order), is-enabled per unit (a SysV unit's answer comes from
# systemd-sysv-install, after lines of its own: the last line is the answer).
scan_services() {
    set -f
    IFS=$NL
    # shellcheck disable=SC2086  # one unit a line, no globbing (set -f)
    active=$(systemctl is-active $SERVICES 2>/dev/null)$NL
    for name in $SERVICES; do
        enabled=$(systemctl is-enabled "$name" 2>/dev/null)
        printf '%s\t%s\t%s\n' "$name" "${enabled##*"$NL"}" "${active%%"$NL"*}"
        active=${active#*"$NL"}
    done
}

# A systemd service: "enabled=STATE" (systemctl is-enabled's last line) and "active=STATE" (is-active).
# From what scan_services read (waited for at the first call), else asked now.
service_state() {
    if [ -n "$services_job" ]; then
        # shellcheck disable=SC2086  # "PID FILE"
        collect $services_job
        services_job="" services=$NL$collected$NL
    fi
    case $services in
        *"$NL$1$TAB"*)
            entry=${services#*"$NL$1$TAB"}
            entry=${entry%%"$NL"*}
            enabled=${entry%%"$TAB"*}
            active=${entry#*"$TAB"}
            ;;
        *)
            enabled=$(systemctl is-enabled "$1" 2>/dev/null)
            enabled=${enabled##*"$NL"}
            active=$(systemctl is-active "$1" 2>/dev/null)
            ;;
    esac
    echo "enabled=$enabled"
    echo "active=$active"
}

# FUNCTION run in the background, its output (stdout and stderr) into a file of its own: sets
# `job` to "PID FILE" for collect.
in_background() {
    job_out=$(mktemp)
    "$1" >"$job_out" 2>&1 &
    job="$! $job_out"
}

# Wait for the background job PID, then set `collected` to its output (FILE, removed) and
# `collected_rc` to its exit status.
collect() {
    wait "$1"
    collected_rc=$?
    collected=$(cat "$2")
    rm -f "$2"
}

services="" services_job=""
if [ -n "$SERVICES" ]; then
    in_background scan_services
    services_job=$job
fi
if [ "$HEALTH" = 1 ]; then
    in_background health
    health_job=$job
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

scan_paths
i=0
while [ "$i" -lt "$RESOURCES" ]; do
    mark fact "$i"
    "probe_$i" 2>/dev/null
    i=$((i + 1))
done

if [ "$HEALTH" = 1 ]; then
    # shellcheck disable=SC2086  # "PID FILE"
    collect $health_job
    mark health
    echo "$collected_rc"
    printf '%s\n' "$collected"
fi
