# An app host takes itself out of its balancers' traffic (OUT=1), or puts itself back (OUT=0), for a
# rolling release: no balancer reloads (docs/topology.md, "Rolling releases").
# Out: the drain table (RULES: templates/nftables/app-drain.nft.j2) resets the balancers' new
# connections, so they retry each request on another app host and leave this one out for their
# fail_timeout; the connections they already have end by themselves (a balancer closes its own after
# keepalive_time, or once idle for its keepalive_timeout). Waits until none is left, requests in
# flight included, at most DRAIN_SECONDS.
# In: the table goes. A balancer that was refused sends here again only after its fail_timeout: waits
# until each of those has connected again, at most REJOIN_SECONDS, so that the next batch is not taken
# out while this host is still left out.
# Parameters: OUT, TABLE, RULES, SS_PORTS (an ss filter), BALANCERS (as ss writes addresses, [v6]),
# DRAIN_SECONDS, REJOIN_SECONDS.
set -u
if ! command -v nft >/dev/null 2>&1; then
    echo "no nftables on this host yet (its first deploy): it takes traffic as it is"
    exit 0
fi

connections_from() {
    ss -Htn state established state syn-recv "$SS_PORTS" dst "$1" | grep -c .
}

# wait_until none|some SECONDS ADDRESS...: until every address has no connection (none) or one at
# least (some), at most SECONDS; prints the addresses it gave up on.
wait_until() {
    want=$1 ticks=$(($2 * 5))
    shift 2
    while :; do
        left=
        for address in "$@"; do
            count=$(connections_from "$address")
            if { [ "$want" = none ] && [ "$count" -gt 0 ]; } || { [ "$want" = some ] && [ "$count" -eq 0 ]; }; then
                left="$left $address"
            fi
        done
        if [ -z "$left" ] || [ "$ticks" -le 0 ]; then
            printf '%s' "$left"
            return
        fi
        sleep 0.2
        ticks=$((ticks - 1))
    done
}

if [ "$OUT" = 1 ]; then
    if ! nft list table inet "$TABLE" >/dev/null 2>&1; then
        printf '%s\n' "$RULES" | nft -f - || exit 1
    fi
    # shellcheck disable=SC2086  # one address a word
    left=$(wait_until none "$DRAIN_SECONDS" $BALANCERS)
    if [ -n "$left" ]; then
        echo "connections from${left} still open after $DRAIN_SECONDS s: deploying anyway"
    fi
    exit 0
fi
listed=$(nft list table inet "$TABLE" 2>/dev/null) || exit 0   # not out: nothing to do
refused=
for address in $BALANCERS; do
    plain=${address#[}
    plain=${plain%]}
    packets=$(printf '%s\n' "$listed" | sed -n "s/.*saddr $plain .*counter packets \([0-9]*\).*/\1/p")
    if [ "${packets:-0}" -gt 0 ]; then
        refused="$refused $address"
    fi
done
nft delete table inet "$TABLE" || exit 1
# shellcheck disable=SC2086  # one address a word
left=$(wait_until some "$REJOIN_SECONDS" $refused)
if [ -n "$left" ]; then
    echo "no new connection from${left} within $REJOIN_SECONDS s (no traffic?)"
fi
exit 0
