# What is wrong with a deployed nginx + uWSGI site, as findings: one line each,
#   LEVEL<TAB>CHECK<TAB>WHAT WAS FOUND<TAB>WHAT TO DO
# LEVEL is ok, warn or fail. Runs as root. Read-only: it changes nothing on the host.
# Given: UNIT (the app's systemd unit), SOCKET (its uWSGI socket), ERROR_LOG (the site's nginx error
# log), SITE (the sites-enabled link), HEALTH_LABEL (what check_health asks), QUICK (1: only what
# `provision status` shows); and a function check_health (exit 0 when the site answers).

finding() {
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4"
}

# --- uWSGI: the master and its workers ----------------------------------------------------------
master=$(systemctl show -p MainPID --value "$UNIT" 2>/dev/null)
if ! systemctl is-active -q "$UNIT"; then
  finding fail uwsgi "$UNIT is $(systemctl is-active "$UNIT" 2>/dev/null)" \
    "systemctl start $UNIT; provision logs --service app shows why it stopped"
elif [ -z "$master" ] || [ "$master" = 0 ]; then
  finding fail uwsgi "$UNIT is active but has no main process" "systemctl restart $UNIT"
else
  alive=0
  defunct=0
  stopped=0
  for state in $(ps -o stat= --ppid "$master" 2>/dev/null); do
    case $state in
      Z*) defunct=$((defunct + 1)) ;;
      T*) stopped=$((stopped + 1)) ;;
      *) alive=$((alive + 1)) ;;
    esac
  done
  if [ "$alive" -eq 0 ]; then
    finding fail workers "no live uWSGI worker ($defunct defunct, $stopped stopped): requests wait in the queue and get no answer" \
      "systemctl restart $UNIT; keep uwsgi_max_requests at 0 on uWSGI < 2.0.26 (docs/settings.md, recycling)"
  elif [ "$defunct" -gt 0 ] || [ "$stopped" -gt 0 ]; then
    finding warn workers "$alive alive, $defunct defunct, $stopped stopped (a recycled worker can hang on exit until worker-reload-mercy)" \
      "keep uwsgi_max_requests at 0 on uWSGI < 2.0.26 (docs/settings.md, recycling)"
  else
    finding ok workers "$alive alive, 0 defunct" ""
  fi
fi

# --- the socket's accept queue: Recv-Q is what waits, Send-Q the backlog --------------------------
# SOCKET (nginx's path) is a symlink to the serving instance's socket (roles/uwsgi-swap.sh)
if [ -L "$SOCKET" ]; then
  SOCKET=$(readlink -f "$SOCKET")
fi
queue=$(ss -xlnH 2>/dev/null | awk -v sock="$SOCKET" '$5 == sock {print $3, $4; exit}')
if [ -n "$queue" ]; then
  waiting=${queue% *}
  backlog=${queue#* }
  if [ "$waiting" -gt 0 ] && [ "${alive:-0}" -eq 0 ]; then
    finding fail queue "accept queue filling: $waiting of $backlog connections wait on $SOCKET and no worker takes them" \
      "see the workers line"
  elif [ "$waiting" -ge $((backlog / 2)) ]; then
    finding warn queue "accept queue filling: $waiting of $backlog connections wait on $SOCKET" \
      "if no worker is alive see the workers line; if all are alive and busy, raise uwsgi_processes"
  else
    finding ok queue "$waiting of $backlog connections waiting on $SOCKET" ""
  fi
elif systemctl is-active -q "$UNIT"; then
  finding fail queue "nothing listens on $SOCKET" "systemctl restart $UNIT; check uwsgi_socket"
fi

[ "$QUICK" = 1 ] && exit 0

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

# --- the socket's owner and mode: nginx (www-data) must be able to write to it --------------------
if [ -S "$SOCKET" ]; then
  if ! su -s /bin/sh -c "test -w '$SOCKET'" www-data 2>/dev/null; then
    finding fail socket "www-data cannot write to $SOCKET ($(stat -c '%U:%G %a' "$SOCKET"))" \
      "uwsgi_chown_socket APP:www-data with uwsgi_chmod_socket 660"
  else
    finding ok socket "$(stat -c '%U:%G %a' "$SOCKET")" ""
  fi
fi

# --- the 502/504 signatures in the recent error log -----------------------------------------------
recent=$(tail -n 500 "$ERROR_LOG" /var/log/nginx/error.log 2>/dev/null)
signature() {
  count=$(printf '%s\n' "$recent" | grep -c -- "$1")
  if [ "$count" -gt 0 ]; then
    finding warn "error log" "$count x '$1' in the last 500 lines: $2" "$3"
  fi
}
signature "(13: Permission denied)" "nginx may not write to the socket" "uwsgi_chown_socket APP:www-data, mode 660"
signature "(2: No such file or directory)" "uWSGI was down or the socket path differs" "systemctl status $UNIT"
signature "(111: Connection refused)" "a stale socket after uWSGI was killed" "systemctl restart $UNIT"
signature "(11: Resource temporarily unavailable)" "the socket's listen queue was full" "raise uwsgi_listen or uwsgi_processes"
signature "upstream timed out" "the app answered slower than uwsgi_read_timeout" "raise uwsgi_read_timeout above uwsgi_harakiri"
signature "prematurely closed" "a worker died mid-request (harakiri, crash)" "provision logs --service app"
signature "worker_connections are not enough" "an nginx worker ran out of connections and reset clients" "raise nginx_worker_connections"
signature "(104: Connection reset by peer)" "request headers larger than uwsgi_buffer_size" "raise uwsgi_buffer_size"
exit 0
