# Retire each app of ours on this host that the inventory no longer has (roles/retire.py, handler
# "retire apps"). It runs after nginx reloaded without the app's routes: its unit is stopped and
# disabled, its unit file, drop-ins, ini and environment file removed, its runtime directory (the
# socket, its link, the stats sockets) removed, and its releases too when REMOVE_RELEASES is 1.
# The app's system user is kept (files it owns elsewhere keep a name).
# Given: KEEP (the names of the apps the inventory has, space separated), UWSGI_DIR, REMOVE_RELEASES.

for ini in "$UWSGI_DIR"/*.ini; do
    [ -e "$ini" ] || continue
    name=$(basename "$ini" .ini)
    case " $KEEP " in *" $name "*) continue ;; esac
    unit="uwsgi-$name"
    unit_file="/etc/systemd/system/$unit.service"
    root=$(sed -n 's|^chdir = \(/.*\)/current/app$|\1|p' "$ini")
    runtime=$(sed -n 's|^RuntimeDirectory=\(..*\)$|\1|p' "$unit_file" 2>/dev/null)
    exporter="provision-uwsgi-exporter-$name"   # its metrics (roles/metrics.py), if it had them
    systemctl disable --now "$unit" "$exporter" >/dev/null 2>&1
    systemctl stop "$unit-standby" >/dev/null 2>&1
    # its stop loaded its app-down table (roles/firewall.py): an app that is gone never holds the balancers off
    nft delete table inet "provision_${name}_down" >/dev/null 2>&1
    rm -f "/etc/nftables-provision-$name-down.nft"
    rm -rf "$unit_file" "$unit_file.d" "$ini" "$UWSGI_DIR/$name.env" \
        "/etc/systemd/system/$exporter.service" "/usr/local/lib/provision/uwsgi-exporter-$name.py"
    systemctl daemon-reload
    systemctl reset-failed "$unit" >/dev/null 2>&1
    # the runtime directory, unless a kept app's unit shares it (sockets set side by side in one directory)
    if [ -n "$runtime" ] && ! grep -qsx "RuntimeDirectory=$runtime" /etc/systemd/system/uwsgi-*.service; then
        rm -rf "/run/$runtime"
    fi
    if [ "$REMOVE_RELEASES" = 1 ] && [ -n "$root" ] && [ "$root" != / ]; then
        rm -rf "$root"
        echo "retired app $name: unit $unit stopped and removed, releases in $root removed"
    else
        echo "retired app $name: unit $unit stopped and removed${root:+, releases kept in $root}"
    fi
done
