# nginx_workers MASTER_PID: each worker of that nginx master, one a line: "PID TITLE", its title
# "nginx: worker process", or "nginx: worker process is shutting down" for a worker of an earlier
# configuration (it has closed its listening sockets and finishes its requests in flight). Its other
# children (a cache manager) are left out. Read from /proc: no pgrep, procps is not on every host.
nginx_workers() {
    for dir in /proc/[0-9]*; do
        read -r pid _ _ ppid _ 2>/dev/null < "$dir/stat" || continue
        [ "$ppid" = "$1" ] || continue
        title=$(tr -d '\0' 2>/dev/null < "$dir/cmdline")    # the title, then NULs up to the argv's length
        case $title in *"worker process"*) echo "$pid $title" ;; esac
    done
}
