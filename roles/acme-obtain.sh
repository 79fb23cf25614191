# The "obtain certificate" handler (roles/tls.py): certbot gets the certificate by HTTP-01 through
# nginx's webroot, then $DIR links to it, stapling follows the certificate (tls-stapling.sh, before
# this file) and nginx reloads. When certbot fails, the one line that says why goes to $FAILED and the
# site keeps its old certificate; run again after the engine's rollback, there is nothing to undo (the
# old certificate never stopped serving).
# shellcheck disable=SC2154  # CERT_NAME, NAMES, SERVER, EMAIL, WEBROOT, DIR, FAILED: assigned before
acme_obtain() {
    if [ -e "$FAILED" ]; then
        rm -f "$FAILED"
        return 0
    fi
    set -- certonly --non-interactive --agree-tos --webroot --webroot-path "$WEBROOT" --cert-name "$CERT_NAME" \
        --server "$SERVER" --force-renewal
    for name in $NAMES; do
        set -- "$@" --domain "$name"
    done
    if [ -n "$EMAIL" ]; then
        set -- "$@" --email "$EMAIL"
    else
        set -- "$@" --register-unsafely-without-email
    fi
    log=$(mktemp)
    if ! certbot "$@" >"$log" 2>&1; then
        detail=$(sed -n 's/^ *Detail: *//p' "$log" | head -n 1)
        [ -n "$detail" ] || detail=$(grep -v '^ *$' "$log" | tail -n 1)
        echo "certbot could not get a certificate for $NAMES from $SERVER: $detail" >"$FAILED"
        rm -f "$log"
        return 1
    fi
    rm -f "$log"
    ln -sfn "/etc/letsencrypt/live/$CERT_NAME/fullchain.pem" "$DIR/fullchain.pem" &&
        ln -sfn "/etc/letsencrypt/live/$CERT_NAME/privkey.pem" "$DIR/privkey.pem" &&
        write_stapling_conf && nginx -t -q && systemctl reload nginx
}
acme_obtain
