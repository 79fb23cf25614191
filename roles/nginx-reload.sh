# The "reload nginx" handler: start nginx, or reload it and return once only workers of the new
# configuration take new connections. `systemctl reload` only signals the master and returns at once;
# the master then starts new workers and tells the old ones to quit, and until an old worker has
# handled that it still accepts connections and answers them with the old configuration. Measured:
# right after a fresh host's first deploy had verified the new site, a GET of /healthz was answered
# 404 by Debian's default site. An old worker that handled the quit has closed its listening sockets
# and calls itself "worker process is shutting down" (it finishes its requests in flight); one that
# is gone is done too. Parameters: WAIT_SECONDS. Needs nginx-workers.sh.
if ! systemctl is-active -q nginx; then
    exec systemctl start nginx
fi
master=$(cat /run/nginx.pid 2>/dev/null)
# the workers that take connections now (one "... is shutting down" from an earlier reload takes none)
old=$(nginx_workers "$master" | while read -r pid title; do
    case $title in *"worker process") echo "$pid" ;; esac
done)
systemctl reload nginx || exit 1
ticks=$((WAIT_SECONDS * 10))
while [ "$ticks" -gt 0 ]; do
    accepting=""
    for pid in $old; do
        case $(tr -d '\0' 2>/dev/null < "/proc/$pid/cmdline") in
            *"worker process") accepting=1 ;;   # not yet "... is shutting down", nor gone
        esac
    done
    [ -z "$accepting" ] && exit 0
    sleep 0.1
    ticks=$((ticks - 1))
done
echo "nginx reloaded, but workers of the old configuration still took connections after $WAIT_SECONDS s"
