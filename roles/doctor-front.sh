# More of `provision doctor` (after doctor.sh, same findings format): the causes of a 5xx that only the
# app's journal names, and the site's certificate. Read-only: it changes nothing on the host.
# Given: UNIT (the app's systemd unit); CERT and KEY (the site's certificate and key, empty without
# tls); NAMES (the host names the certificate must cover).

finding() {
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4"
}

# --- the app's journal: what uWSGI says when nginx gets a 502 -------------------------------------
journal=$(journalctl -u "$UNIT" -n 1000 --no-pager -o cat 2>/dev/null)
app_signature() {
  count=$(printf '%s\n' "$journal" | grep -c -- "$1")
  if [ "$count" -gt 0 ]; then
    finding "$2" "$3" "$count x '$1' in the app's journal: $4" "$5"
  fi
}
app_signature "unavailable modifier requested: 0" fail plugin \
  "uWSGI runs without its python plugin, every request is a 502" \
  "uwsgi_plugins: python3, with uwsgi_strict and uwsgi_need_app on (a missing plugin then stops the start)"
app_signature "HARAKIRI !!!" warn harakiri \
  "requests killed after uwsgi_harakiri seconds (nginx: 502, upstream prematurely closed)" \
  "make the endpoint faster, or raise uwsgi_harakiri (uwsgi_read_timeout follows it)"
app_signature "invalid request block size" warn "header buffer" \
  "request headers larger than uwsgi_buffer_size (nginx: 502, connection reset by peer)" \
  "raise uwsgi_buffer_size (at most 65535)"

# --- the site's certificate -----------------------------------------------------------------------
[ -n "$CERT" ] || exit 0
if [ ! -s "$CERT" ] || [ ! -s "$KEY" ]; then
  finding fail certificate "no certificate or key at $CERT, $KEY" "provision deploy"
  exit 0
fi
end=$(openssl x509 -noout -enddate -in "$CERT" 2>/dev/null | cut -d= -f2)
if ! openssl x509 -noout -checkend 0 -in "$CERT" >/dev/null 2>&1; then
  finding fail certificate "expired on $end: clients refuse the site" \
    "tls acme: certbot renew (its log says why the timer did not); files: ship a new chain; self-signed: delete it, provision deploy"
elif ! openssl x509 -noout -checkend 1209600 -in "$CERT" >/dev/null 2>&1; then
  finding warn certificate "expires on $end, in less than 14 days" \
    "tls acme: certbot renew --dry-run says why renewal has not happened; files: ship a new chain"
else
  finding ok certificate "valid until $end" ""
fi
for name in $NAMES; do
  if ! openssl x509 -noout -checkhost "$name" -in "$CERT" 2>/dev/null | grep -q "does match"; then
    finding fail certificate "it does not cover $name: clients asking for $name refuse it" \
      "tls acme or self-signed: provision deploy; files: a chain for every server_name"
  fi
done
if [ "$(openssl x509 -noout -pubkey -in "$CERT" 2>/dev/null | sha256sum)" != \
     "$(openssl pkey -pubout -in "$KEY" 2>/dev/null | sha256sum)" ]; then
  finding fail certificate "the key at $KEY does not belong to the certificate: nginx cannot reload" \
    "ship tls_certificate and tls_key as a pair"
fi
