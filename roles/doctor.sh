# What is wrong with a deployed nginx + uWSGI site, as findings: one line each,
#   LEVEL<TAB>CHECK<TAB>WHAT WAS FOUND<TAB>WHAT TO DO
# LEVEL is ok, warn or fail. Runs as root. Read-only: it changes nothing on the host.
# What runs behind nginx is checked first, by doctor-uwsgi.sh (an app host) or doctor-upstream.sh (a
# balancer); this part is nginx's side and is not run by `provision status`.
# Given: UNIT (the app's systemd unit), TIER (single, app or balancer), ERROR_LOG (the site's nginx
# error log), SITE (the sites-enabled link), HEALTH_LABEL (what check_health asks); and a function
# check_health (exit 0 when the site answers).

finding() {
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4"
}

# --- the site, as a client sees it ----------------------------------------------------------------
if answer=$(check_health 2>&1); then
  finding ok health "$HEALTH_LABEL: $(printf '%s' "$answer" | tail -n 1)" ""
else
  finding fail health "$HEALTH_LABEL: $(printf '%s' "$answer" | tail -n 1)" \
    "the other findings say why; provision logs shows nginx's and the app's logs"
fi

# --- nginx ----------------------------------------------------------------------------------------
if ! systemctl is-active -q nginx; then
  finding fail nginx "nginx is $(systemctl is-active nginx 2>/dev/null)" "nginx -t, then systemctl start nginx"
elif ! out=$(nginx -t 2>&1); then
  finding fail nginx "the config on disk fails nginx -t: $(printf '%s' "$out" | grep emerg | head -n 1)" \
    "fix it (provision deploy rewrites our site), then nginx -t"
else
  finding ok nginx "active, nginx -t passes" ""
fi
if [ ! -L "$SITE" ]; then
  finding fail site "$SITE is not a link to the site" "provision deploy"
fi
if [ -e /etc/nginx/sites-enabled/default ]; then
  finding warn site "Debian's default site is enabled and may take the requests" "provision deploy removes it"
fi

# --- the 502/504 signatures in the recent error log -----------------------------------------------
recent=$(tail -n 500 "$ERROR_LOG" /var/log/nginx/error.log 2>/dev/null)
signature() {
  count=$(printf '%s\n' "$recent" | grep -c -- "$1")
  if [ "$count" -gt 0 ]; then
    finding warn "error log" "$count x '$1' in the last 500 lines: $2" "$3"
  fi
}
if [ "$TIER" = balancer ]; then
  signature "no live upstreams" "every app host was failing at once, nginx had none left to try" \
    "the app host findings above say which answer now; provision doctor -H APP_HOST for one that does not"
  signature "(111: Connection refused)" "an app host refused a connection (its nginx was down)" \
    "provision doctor -H APP_HOST (the error log line names its address)"
  signature "(113: No route to host)" "an app host was unreachable (powered off, or its address changed)" \
    "check the app host; its private_address in the inventory"
  signature "upstream timed out" "an app host answered slower than uwsgi_read_timeout" \
    "raise uwsgi_read_timeout above uwsgi_harakiri, or find the slow request in the app's log"
  exit 0
fi
signature "(13: Permission denied)" "nginx may not write to the socket" "uwsgi_chown_socket APP:www-data, mode 660"
signature "(2: No such file or directory)" "uWSGI was down or the socket path differs" "systemctl status $UNIT"
signature "(111: Connection refused)" "a stale socket after uWSGI was killed" "systemctl restart $UNIT"
signature "(11: Resource temporarily unavailable)" "the socket's listen queue was full" "raise uwsgi_listen or uwsgi_processes"
signature "upstream timed out" "the app answered slower than uwsgi_read_timeout" "raise uwsgi_read_timeout above uwsgi_harakiri"
signature "prematurely closed" "a worker died mid-request (harakiri, crash)" "provision logs --service app"
signature "worker_connections are not enough" "an nginx worker ran out of connections and reset clients" "raise nginx_worker_connections"
signature "(104: Connection reset by peer)" "request headers larger than uwsgi_buffer_size" "raise uwsgi_buffer_size"
exit 0
