# GET http://ADDRESS:PORT/PATH (ADDRESS: 127.0.0.1 unless given) with a Host header, retrying while a restarted uWSGI loads its app.
# Run by bash (engine/verify.py): its /dev/tcp needs no program started, where a python3 check costs an
# interpreter start on every probe. bash is Essential in Debian: it is on every host.
# argv: PORT HOST PATH TRIES [ADDRESS]. Prints "STATUS BODY" (the body's first 200 bytes); exit 0 on a 2xx
# answer, 1 on none; on a redirect, nothing and exit 3 (the caller's check follows it).
# shellcheck disable=SC3025,SC3045,SC3057  # bash, not sh: /dev/tcp, read -t/-N, ${v:0:3} are the point
port=$1 host=$2 path=$3 tries=$4 address=${5:-127.0.0.1}
attempt=1
while :; do
    status=0 body="connection refused on $address:$port"
    if { exec 3<>"/dev/tcp/$address/$port"; } 2>/dev/null; then
        printf 'GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: provision-health\r\nConnection: close\r\n\r\n' \
            "$path" "$host" >&3
        body="no answer in 10 s"
        if read -r -t 10 _ status _ <&3; then
            while read -r -t 10 line <&3 && [ -n "${line%?}" ]; do :; done    # the headers, up to the empty line
            body=""
            read -r -t 10 -N 200 body <&3
        fi
        exec 3<&-
        status=${status:0:3}                                                    # no reason phrase: "200\r"
    fi
    case $status in
        2??) echo "$status ${body%"${body##*[![:space:]]}"}"; exit 0 ;;
        3??) exit 3 ;;
    esac
    [ "$attempt" -ge "$tries" ] && break
    attempt=$((attempt + 1))
    sleep 0.5
done
echo "$status ${body%"${body##*[![:space:]]}"}"
exit 1
