# `provision status` of one app (status.sh runs it for each, after the app's name when the host
# runs several): its uWSGI unit and its current release.
# Given: UNIT (the app's systemd unit), CURRENT (its current-release link).
echo "uwsgi: $(systemctl is-active "$UNIT" 2>/dev/null) $(dpkg-query -W -f='${Version}' uwsgi 2>/dev/null)"
echo "release: $(basename "$(readlink "$CURRENT")" 2>/dev/null)"
