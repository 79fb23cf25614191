# "present" when $DIR has a certificate nginx can load; then, when it links to certbot's for
# $CERT_NAME, "server URL" and "name N" for each name of that certificate. Probe only.
# shellcheck disable=SC2154  # CERT_NAME and DIR are assigned before this text (roles/tls.py)
live="/etc/letsencrypt/live/$CERT_NAME"
[ -s "$DIR/fullchain.pem" ] && [ -s "$DIR/privkey.pem" ] && echo present
if [ "$(readlink "$DIR/fullchain.pem")" = "$live/fullchain.pem" ] && [ -s "$live/fullchain.pem" ]; then
    sed -n 's/^server *= */server /p' "/etc/letsencrypt/renewal/$CERT_NAME.conf" 2>/dev/null
    openssl x509 -noout -ext subjectAltName -in "$live/fullchain.pem" 2>/dev/null | tr ',' '\n' |
        sed -n 's/^ *DNS:/name /p'
fi
