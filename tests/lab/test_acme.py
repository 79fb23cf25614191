"""HTTPS with an ACME certificate on a real host, through the real CLI: Debian's pebble runs beside the
host in a network namespace of the test's own (tests/lab/pebble.py). The certificate is obtained by
HTTP-01 during the deploy; a client trusting pebble's root verifies the chain and gets h2; a forced
renewal is served after a reload (same nginx master) and staples for the OCSP responder pebble's
certificates name, nginx -t without a warning; testssl.sh finds nothing HIGH or CRITICAL; a
re-deploy with every feature of the front on changes nothing; a challenge that fails fails the deploy in one line, the old certificate
serving on.
"""

import base64
import json
import socket
import ssl
import subprocess
import time

import pytest

from provisioner.labs.container import write_inventory
from tests.lab import pebble
from tests.lab.test_deploy import deploy_json, own_known_hosts, provision, remote  # noqa: F401  (an autouse fixture)
from tests.lab.test_front import FRONT, SITE, on_host

pytestmark = pytest.mark.lab


@pytest.fixture
def pebble_beside(lab_hosts, tmp_path):
    """A fresh lab host and pebble beside it (names: SITE -> the host; www.lab.test -> pebble itself, where
    nothing answers HTTP, so its challenge fails). The host trusts pebble's own TLS certificate."""
    [host] = lab_hosts(1)
    server = pebble.start(host.instance, host.address, {SITE: host.address,
                                                        "www.lab.test": pebble.address_beside(host.address)}, tmp_path)
    try:
        inventory = write_inventory([host], tmp_path / "inv.yml")
        trusted = base64.b64encode(server.tls_ca.read_bytes()).decode()
        remote(inventory, host.name, f"mkdir -p /usr/local/share/ca-certificates && echo {trusted} | base64 -d > "
                                     "/usr/local/share/ca-certificates/pebble-lab.crt")
        yield host, server
    finally:
        pebble.stop(server, host.instance)


def served_certificate(address, root, wait=15.0):
    """The serial of the certificate the site serves, verified against `root`, and the protocol (h2).
    A reload returns before nginx's master has its new workers in place: for a moment after it an old
    worker may still answer with the certificate it had (seen once in CI), so this asks again for up
    to `wait` seconds before a verification failure counts."""
    context = ssl.create_default_context(cafile=str(root))
    context.set_alpn_protocols(["h2", "http/1.1"])
    deadline = time.monotonic() + wait
    while True:
        try:
            with socket.create_connection((address, 443), timeout=10) as raw:
                with context.wrap_socket(raw, server_hostname=SITE) as conn:
                    return conn.getpeercert()["serialNumber"], conn.selected_alpn_protocol()
        except ssl.SSLCertVerificationError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_acme_certificate_by_http01_renewed_without_restart(pebble_beside, tmp_path):
    host, server = pebble_beside
    # every feature of the front on, so that the no-op re-deploy below covers them all together
    acme = {**FRONT, "tls": "acme", "acme_server": server.directory, "acme_email": "ops@lab.test"}
    inventory = write_inventory([host], tmp_path / "inv.yml", group_vars=acme)
    code, [first] = deploy_json(inventory)
    assert (code, first["status"]) == (0, "changed"), first
    assert [h["name"] for h in first["handlers"]][-1] == "obtain certificate"
    root = server.issuing_root(tmp_path / "pebble-root.pem")
    serial, protocol = served_certificate(host.address, root)
    assert protocol == "h2"

    master = on_host(inventory, host.name, "systemctl show -p MainPID --value nginx").strip()
    on_host(inventory, host.name, "certbot renew --force-renewal --no-random-sleep-on-renew")
    renewed, deadline = serial, time.monotonic() + 15  # the deploy hook's reload takes effect a moment later
    while renewed == serial and time.monotonic() < deadline:
        time.sleep(0.5)
        renewed, _ = served_certificate(host.address, root)
    assert renewed != serial, "the renewed certificate is served"
    assert on_host(inventory, host.name, "systemctl show -p MainPID --value nginx").strip() == master, \
        "reloaded by the deploy hook, never restarted"
    stapling = on_host(inventory, host.name, "cat /etc/ssl/provision/model_api/stapling.conf")
    assert "ssl_stapling on;" in stapling and ":4002" in stapling, "pebble's certificates name its OCSP responder"
    checked = on_host(inventory, host.name, "nginx -t 2>&1")
    assert "syntax is ok" in checked and "[warn]" not in checked, checked

    code, [again] = deploy_json(inventory)
    assert (code, again["status"], again["changed"], again["handlers"]) == (0, "ok", 0, []), again
    assert again["remote"]["channels"] == 1

    report = tmp_path / "testssl.json"
    # everything but the client simulation and GREASE (minutes more, nothing a HIGH finding comes from)
    subprocess.run(["testssl", "-p", "-s", "-f", "-P", "-S", "-h", "-U", "--quiet", "--color", "0", "--warnings", "off",
                    "--nodns", "none", "--ip",
                    host.address, "--add-ca", str(root), "--jsonfile", str(report), f"{SITE}:443"],
                   capture_output=True, timeout=900)
    findings = json.loads(report.read_text())
    assert "offered" in next(f["finding"] for f in findings if f["id"] == "TLS1_3"), "testssl reached the site"
    assert not [f for f in findings if f["severity"] in ("HIGH", "CRITICAL")], findings

    # A challenge that fails (www.lab.test leads pebble nowhere): one line why; the old certificate serves on.
    inventory = write_inventory([host], tmp_path / "inv.yml", group_vars={**acme, "server_name": f"{SITE} www.lab.test"})
    result = provision("deploy", "-H", "lab", "-i", inventory, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    why = [line for line in (result.stdout + result.stderr).splitlines() if "certbot could not get" in line]
    assert len(why) == 1 and "www.lab.test" in why[0], result.stdout + result.stderr
    assert served_certificate(host.address, root)[0] == renewed
