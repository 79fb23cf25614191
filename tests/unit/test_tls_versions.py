"""HTTPS that follows the host (roles/tls.py): HTTP/2 the way the host's nginx version knows (the probe
reads it), and OCSP stapling only for a certificate that names a responder, with a real nginx -t and the
stapling shell (roles/tls-stapling.sh) run for real.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from provisioner.engine import facts
from provisioner.errors import UserError
from provisioner.resources import SystemFacts
from provisioner.templating import render
from roles import STACK, tls
from tests.unit.test_front_templates import serving
from tests.unit.test_templates import _free_port, _nginx_conf, _nginx_t, ctx, needs_nginx, settings
from tests.unit.test_tls_templates import make_certificate

pytestmark = pytest.mark.unit

SITE = "api.example.com"
RESPONDER = "http://127.0.0.1:9/"   # an address nginx need not look up; nothing answers there


def site_file(**over):
    [site] = [r for r in STACK.declare(settings(server_name=SITE, **over))[0]
              if r.label() == "file /etc/nginx/sites-available/model_api"]
    return site


def written(site, nginx_version: tuple[int, ...]) -> str:
    """What a deploy writes for the site on a host with that nginx (the diff's added lines)."""
    decision = site.decide({"kind": "absent"}, SystemFacts(nginx_version=nginx_version), want_diff=True)
    return "\n".join(line[1:] for line in decision.diff.splitlines() if line.startswith("+"))


@pytest.mark.parametrize("version, listen, http2_on", [
    ((1, 22, 1), "listen 443 ssl http2 backlog=4096;", False),   # Debian 12: `http2 on;` is unknown there
    ((1, 26, 3), "listen 443 ssl backlog=4096;", True),          # Debian 13: the listen flag is deprecated
    ((1, 25, 1), "listen 443 ssl backlog=4096;", True),
    ((), "listen 443 ssl http2 backlog=4096;", False),           # nginx not installed yet: the form 1.22 knows
])
def test_http2_and_session_tickets_the_way_the_hosts_nginx_knows(version, listen, http2_on):
    text = written(site_file(tls="self-signed"), version)
    assert f"    {listen}\n" in text
    assert ("    http2 on;\n" in text) == http2_on
    assert ("ssl_session_tickets off;" in text) != http2_on, "tickets off only where nginx never rotates their key"


def test_without_tls_the_site_is_the_same_on_every_nginx():
    site = site_file()
    assert written(site, (1, 22, 1)) == written(site, (1, 26, 3)) and "http2" not in written(site, (1, 26, 3))


def test_the_probe_reports_the_hosts_nginx_version(tmp_path):
    """probe.sh itself, run here with an nginx that prints what Debian 13's prints."""
    fake = tmp_path / "bin" / "nginx"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'nginx version: nginx/1.26.3' >&2\n")
    fake.chmod(0o755)
    script = facts.probe_script([])
    for path, version in ((f"{fake.parent}:/usr/bin:/bin", (1, 26, 3)), ("/usr/bin:/bin", ())):
        out = subprocess.run(["sh", "-c", script], env={"PATH": path}, capture_output=True, text=True, check=True)
        assert facts.parse(out.stdout, [])[0].nginx_version == version, out.stdout


# --- OCSP stapling -----------------------------------------------------------------------------------


def chain_with_responder(directory: Path, responder: str = RESPONDER) -> tuple[Path, Path]:
    """A certificate for SITE issued by a CA of its own, naming an OCSP responder; fullchain.pem holds
    the issuer too (nginx needs it to ask the responder)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = make_certificate(directory / "ca", "Test CA")
    key, csr, leaf = directory / "privkey.pem", directory / "leaf.csr", directory / "leaf.pem"
    (directory / "ext").write_text(f"subjectAltName=DNS:{SITE}\nauthorityInfoAccess=OCSP;URI:{responder}\n")
    subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-subj", f"/CN={SITE}", "-keyout", key, "-out", csr], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial",
                    "-days", "2", "-extfile", directory / "ext", "-out", leaf], check=True, capture_output=True)
    chain = directory / "fullchain.pem"
    chain.write_text(leaf.read_text() + ca_cert.read_text())
    return chain, key


def stapling(directory: Path, responder: str = "-") -> str:
    """The stapling file tls-stapling.sh writes in `directory` for its fullchain.pem, run here for real."""
    resource = tls.OcspStapling({"CERT": str(directory / "fullchain.pem"), "RESPONDER": responder,
                                 "STAPLING": str(directory / "stapling.conf")})
    before = subprocess.run(["sh", "-c", resource.probe()], capture_output=True, text=True, check=True).stdout
    decision = resource.decide(resource.parse(before), SystemFacts())
    assert decision.changed and decision.backup == (str(directory / "stapling.conf"),)
    subprocess.run(["sh", "-c", decision.script], check=True)
    after = subprocess.run(["sh", "-c", resource.probe()], capture_output=True, text=True, check=True).stdout
    assert not resource.decide(resource.parse(after), SystemFacts()).changed, "written once, then current"
    return (directory / "stapling.conf").read_text()


def test_the_responder_is_read_from_the_certificate(tmp_path):
    chain, _ = chain_with_responder(tmp_path / "ocsp")
    assert tls.ocsp_responder(chain.read_text()) == RESPONDER
    plain, _ = make_certificate(tmp_path / "plain")
    assert tls.ocsp_responder(plain.read_text()) == ""
    with pytest.raises(UserError) as caught:
        tls.ocsp_responder("not a certificate", "tls_certificate of model_api")
    assert caught.value.cause == "tls_certificate of model_api is not a PEM certificate"


def test_files_mode_staples_only_a_certificate_with_a_responder(tmp_path):
    chain, key = chain_with_responder(tmp_path / "ocsp")
    plain, plain_key = make_certificate(tmp_path / "plain")
    for cert, private, responder in ((chain, key, RESPONDER), (plain, plain_key, "")):
        v = settings(tls="files", tls_certificate=str(cert), tls_key=str(private), server_name=SITE)
        [resource] = [r for r in tls.resources(v) if isinstance(r, tls.OcspStapling)]
        assert resource.params["RESPONDER"] == responder and resource.notify == ("reload nginx",)
    [self_signed] = [r for r in tls.resources(settings(tls="self-signed", server_name=SITE))
                     if isinstance(r, tls.OcspStapling)]
    assert self_signed.params["RESPONDER"] == ""
    [acme] = [r for r in tls.resources(settings(tls="acme", server_name=SITE)) if isinstance(r, tls.OcspStapling)]
    assert acme.params["RESPONDER"] == "-", "certbot's certificate decides, on the host"


def test_the_stapling_file_follows_the_certificate(tmp_path):
    chain_with_responder(tmp_path / "ocsp")
    on = stapling(tmp_path / "ocsp")
    assert "ssl_stapling on;\nssl_stapling_verify on;\n" in on and f"responder {RESPONDER}" in on
    make_certificate(tmp_path / "plain")
    off = stapling(tmp_path / "plain")
    assert "ssl_stapling" not in off and "names no OCSP responder" in off


@needs_nginx
def test_nginx_t_is_clean_with_stapling_and_without(tmp_path):
    """The site with a responder's certificate staples and nginx -t has no warning; a certificate without one
    gets no stapling, so no warning either. Forcing stapling on that one is the warning this avoids."""
    for name, make in (("ocsp", chain_with_responder), ("plain", make_certificate)):
        directory = tmp_path / name
        make(directory)
        stapling(directory)
        port = _free_port()
        v = settings(tls="files", tls_certificate=str(directory / "fullchain.pem"),
                     tls_key=str(directory / "privkey.pem"), server_name=SITE, http_port=port, https_port=_free_port(),
                     uwsgi_socket=str(tmp_path / "none.sock"))
        text = render("nginx/site.conf.j2", ctx(v)).replace(tls.tls_dir(v), str(directory))
        text = text.replace(f"    listen 127.0.0.1:{port};\n", "").replace(f"listen {v.https_port} ",
                                                                          f"listen 127.0.0.1:{v.https_port} ")
        assert (f"include {directory}/stapling.conf;") in text
        with serving(tmp_path / f"nginx-{name}", text, port):   # asserts nginx -t passed without a warning
            pass
    forced = tmp_path / "forced.conf"
    forced.write_text(f"server {{\n    listen 127.0.0.1:{_free_port()} ssl;\n"
                      f"    ssl_certificate {tmp_path}/plain/fullchain.pem;\n"
                      f"    ssl_certificate_key {tmp_path}/plain/privkey.pem;\n    ssl_stapling on;\n}}\n")
    prefix = tmp_path / "forced"
    checked = _nginx_t(_nginx_conf(prefix, forced), prefix)
    assert checked.returncode == 0 and '"ssl_stapling" ignored' in checked.stderr, checked.stderr


def test_certbots_renewal_hook_decides_stapling_then_reloads(tmp_path):
    """The deploy hook as written to the host, run here with an nginx and a systemctl that log their calls:
    a renewed certificate that names a responder gets stapling, then `nginx -t` and a reload, never a restart."""
    v = settings(tls="acme", server_name=SITE)
    [hook] = [r for r in tls.resources(v) if getattr(r, "path", "") == tls.RENEW_HOOK]
    assert hook.content.startswith("#!/bin/sh\n") and hook.mode == "0755"
    directory = tmp_path / "tls"
    chain_with_responder(directory)
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    for name in ("nginx", "systemctl"):
        (bin_dir / name).write_text(f'#!/bin/sh\necho "{name} $*" >>{calls}\n')
        (bin_dir / name).chmod(0o755)
    script = tmp_path / "hook"
    script.write_text(hook.content.replace(tls.tls_dir(v), str(directory)))
    subprocess.run(["sh", str(script)], env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, check=True)
    assert "ssl_stapling on;" in (directory / "stapling.conf").read_text()
    assert calls.read_text() == "nginx -t -q\nsystemctl reload nginx\n"
