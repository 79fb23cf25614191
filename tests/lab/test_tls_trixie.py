"""HTTPS on Debian 13 (trixie, nginx 1.26) through the real CLI: the site turns HTTP/2 on with `http2 on;`
(the listen flag is deprecated there), `nginx -t` has no warning, h2 over TLS 1.3, no stapling for a
certificate without an OCSP responder, Debian 13's prometheus-nginx-exporter (1.4) and the uWSGI exporter
answering the controller with access_log_format json, a no-op re-deploy. Its own file so the parallel workers run it
beside test_front.py.
"""

import socket
import ssl

import pytest

from provisioner.labs.container import network, write_inventory
from tests.lab.test_day_two import scrape
from tests.lab.test_deploy import deploy_json, own_known_hosts  # noqa: F401  (an autouse fixture)
from tests.lab.test_front import SITE, ask_tls, on_host

pytestmark = pytest.mark.lab


def test_https_on_trixie_uses_http2_on_and_nginx_t_has_no_warning(lab_hosts, tmp_path):
    """Debian 13's nginx 1.26 warns on `listen ... http2` (deprecated since 1.25.1): its site says `http2 on;`."""
    [host] = lab_hosts(1, release="trixie")
    controller = network.gateway(f"{host.address.rpartition('.')[0]}.0/24")
    inventory = write_inventory([host], tmp_path / "inv.yml", group_vars={
        "server_name": SITE, "tls": "self-signed", "metrics_scraper": controller, "access_log_format": "json"})
    code, [first] = deploy_json(inventory)
    assert (code, first["status"]) == (0, "changed"), first
    assert on_host(inventory, host.name, "nginx -v 2>&1").startswith("nginx version: nginx/1.26")
    checked = on_host(inventory, host.name, "nginx -t 2>&1")
    assert "syntax is ok" in checked and "[warn]" not in checked and "[emerg]" not in checked, checked
    site = on_host(inventory, host.name, "grep -E '^ *(listen|http2)' /etc/nginx/sites-available/model_api")
    assert "    http2 on;\n" in site and "ssl http2" not in site, site
    assert "ssl_stapling" not in on_host(inventory, host.name, "cat /etc/ssl/provision/model_api/stapling.conf"), \
        "a self-signed certificate names no OCSP responder"

    cert = tmp_path / "cert.pem"
    cert.write_text(on_host(inventory, host.name, "cat /etc/ssl/provision/model_api/fullchain.pem"))
    context = ssl.create_default_context(cafile=str(cert))
    context.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection((host.address, 443), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=SITE) as conn:
            assert (conn.version(), conn.selected_alpn_protocol()) == ("TLSv1.3", "h2")
    assert ask_tls(host.address, "/healthz", cert)[0] == 200
    nginx, uwsgi = scrape(host.address, 9113), scrape(host.address, 9117)
    assert (nginx["nginx_up"], uwsgi["uwsgi_up"]) == (1, 1) and uwsgi["uwsgi_requests_total"] >= 1, (nginx, uwsgi)

    code, [again] = deploy_json(inventory)
    assert (code, again["status"], again["changed"], again["handlers"]) == (0, "ok", 0, []), again
    assert again["remote"]["channels"] == 1
