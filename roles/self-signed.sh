# Make a self-signed certificate (P-256, 825 days) for $SUBJECT and the names in $SAN
# ("DNS:a,DNS:b") at $CERT, its key at $KEY (0600 root). The key is made here and never leaves the host.
# shellcheck disable=SC2154  # CERT, KEY, SUBJECT and SAN are assigned before this text (roles/tls.py)
( umask 077 &&
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 \
      -subj "/CN=$SUBJECT" -addext "subjectAltName=$SAN" -keyout "$KEY.new" -out "$CERT.new" 2>&1 &&
  chmod 0644 "$CERT.new" && chown root:root "$CERT.new" "$KEY.new" &&
  mv -f "$KEY.new" "$KEY" && mv -f "$CERT.new" "$CERT" )
