# The names the self-signed certificate at $CERT was made for, one a line; nothing when it or its key
# at $KEY is missing. Probe only: reads, changes nothing.
# shellcheck disable=SC2154  # CERT and KEY are assigned before this text (roles/tls.py)
if [ -s "$CERT" ] && [ -s "$KEY" ]; then
    openssl x509 -noout -ext subjectAltName -in "$CERT" 2>/dev/null | tr ',' '\n' | sed -n 's/^ *DNS://p'
fi
