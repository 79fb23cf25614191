# `provision doctor` and `status` on a host that runs the app (not a balancer): its uWSGI, the
# socket's accept queue and who may write to it, as findings (the format of doctor.sh). Read-only.
# Given: UNIT (the app's systemd unit), SOCKET (its uWSGI socket), QUICK (1: only what
# `provision status` shows).

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

# --- the socket's owner and mode: nginx (www-data) must be able to write to it --------------------
if [ -S "$SOCKET" ]; then
  if ! su -s /bin/sh -c "test -w '$SOCKET'" www-data 2>/dev/null; then
    finding fail socket "www-data cannot write to $SOCKET ($(stat -c '%U:%G %a' "$SOCKET"))" \
      "uwsgi_chown_socket APP:www-data with uwsgi_chmod_socket 660"
  else
    finding ok socket "$(stat -c '%U:%G %a' "$SOCKET")" ""
  fi
fi
