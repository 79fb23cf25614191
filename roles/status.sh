# What `provision status` shows of a host: services and versions, the release, the site's health.
# Given: functions app_status (status-app.sh for each app) and check_health, TIER (single, app or
# balancer: a balancer runs no app); a function check_health (exit 0 when the site answers). The
# workers and queue lines (or a balancer's app hosts) come from doctor-uwsgi.sh (doctor-upstream.sh).
echo "nginx: $(systemctl is-active nginx 2>/dev/null) $(dpkg-query -W -f='${Version}' nginx 2>/dev/null)"
if [ "$TIER" != balancer ]; then
  app_status   # each app's uwsgi and release lines (status-app.sh)
fi
echo "health: $(check_health 2>&1 | tail -n 1)"
