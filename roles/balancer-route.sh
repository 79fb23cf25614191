# A balancer routes around some app hosts that have no firewall (a rolling release; app hosts with one
# drain themselves: app-drain.sh): write its upstream file (the app hosts to leave out marked `down`),
# check nginx, reload, and wait until the workers of the old configuration exit: they finish the
# requests they have in flight first, so when they are gone no request to a host left out is still
# running. The old file is put back if nginx -t refuses the new. The reload's cost: the old workers
# close their idle client connections, and a request a client sends on one at that instant fails.
# Parameters: UPSTREAM_FILE, UPSTREAM_TEXT, DRAIN_SECONDS. Needs nginx-workers.sh.
set -u
backup="$UPSTREAM_FILE.provision-route"
cp -p "$UPSTREAM_FILE" "$backup" || exit 1
printf '%s' "$UPSTREAM_TEXT" > "$UPSTREAM_FILE.provision-new" && mv -f "$UPSTREAM_FILE.provision-new" "$UPSTREAM_FILE"
if ! check=$(nginx -t -q 2>&1); then
    mv -f "$backup" "$UPSTREAM_FILE"
    echo "nginx -t refused the upstream: $check"
    exit 3
fi
rm -f "$backup"
master=$(cat /run/nginx.pid 2>/dev/null)
old_workers=$(nginx_workers "$master" | cut -d' ' -f1)
systemctl reload nginx || exit 1
ticks=$((DRAIN_SECONDS * 5))
while [ "$ticks" -gt 0 ]; do
    busy=
    for pid in $old_workers; do
        if kill -0 "$pid" 2>/dev/null; then busy=1; fi
    done
    if [ -z "$busy" ]; then exit 0; fi
    sleep 0.2
    ticks=$((ticks - 1))
done
echo "the old workers still run after $DRAIN_SECONDS s: requests in flight may fail"
