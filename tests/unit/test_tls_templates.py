"""HTTPS (roles/tls.py, templates/nginx/tls*.j2): the settings, and a real nginx with a certificate made
here: TLS 1.2+ only, h2, HTTP -> HTTPS 308 except the ACME challenges, an unknown SNI refused, HSTS.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from provisioner.config.secret import Secret
from provisioner.errors import UserError
from provisioner.templating import render
from roles import STACK, tls
from tests.unit.test_front_templates import serving
from tests.unit.test_templates import _free_port, ctx, needs_nginx, settings

pytestmark = pytest.mark.unit

SITE = "api.example.com"


def make_certificate(directory: Path, name: str = SITE) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "fullchain.pem", directory / "privkey.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "2", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


# --- settings --------------------------------------------------------------------------------------


def test_tls_settings(tmp_path):
    assert settings(tls=False).tls == "off"   # YAML's unquoted off
    cert, key = make_certificate(tmp_path)
    v = settings(tls="files", tls_certificate=str(cert), tls_key=key.read_text(), server_name=SITE)
    assert v.tls_certificate == str(cert) and v.tls_key.startswith("-----BEGIN")
    assert isinstance(v.tls_key, Secret) and "******" in repr(v.tls_key), "a key written inline is a secret"


@pytest.mark.parametrize("raw, words", [
    ({"tls": "letsencrypt"}, "tls of test must be off, self-signed, files or acme"),
    ({"tls": "files"}, "tls of test is files but tls_certificate or tls_key is not set"),
    ({"tls": "files", "tls_certificate": "/nonexistent.pem", "tls_key": "/nonexistent.key"},
     "tls_certificate of test is /nonexistent.pem, which is not a file"),
    ({"tls": "acme"}, "an HTTP-01 certificate needs the site's host names"),
    ({"tls": "acme", "server_name": "*.example.com"}, "an HTTP-01 certificate needs the site's host names"),
    ({"acme_email": "nobody"}, "acme_email of test must be an e-mail address"),
    ({"acme_server": "http://insecure.example/dir"}, "acme_server of test must be an https URL"),
])
def test_wrong_tls_settings_are_one_line_errors(raw, words):
    with pytest.raises(UserError) as caught:
        settings(**raw)
    assert words in caught.value.cause and "\n" not in caught.value.cause


def test_the_key_file_is_secret_0600_and_never_in_a_diff(tmp_path):
    cert, key = make_certificate(tmp_path)
    v = settings(tls="files", tls_certificate=str(cert), tls_key=str(key), server_name=SITE)
    files = {r.path: r for r in tls.resources(v) if hasattr(r, "content")}
    written = files["/etc/ssl/provision/model_api/privkey.pem"]
    assert (written.mode, written.owner, written.secret) == ("0600", "root", True)
    assert written.content == key.read_text()
    decision = written.decide({"kind": "absent"}, None, want_diff=True)
    assert "PRIVATE KEY" not in decision.diff and "content hidden" in decision.diff


def test_a_self_signed_certificate_is_kept_until_the_names_change():
    [cert] = [r for r in tls.resources(settings(tls="self-signed", server_name=SITE)) if "self-signed" in r.label()]
    assert not cert.decide([SITE], None).changed
    assert cert.decide([], None).reason == "does not exist"
    assert cert.decide(["old.example.com"], None).reason == f"made for old.example.com, not {SITE}"


def test_tls_paths_agree_with_the_templates():
    out = render("nginx/site.conf.j2", ctx(settings(tls="self-signed", server_name=SITE)))
    assert f"ssl_certificate {tls.tls_dir(settings())}/fullchain.pem;" in out
    assert f"root {tls.ACME_WEBROOT};" in out
    assert "Strict-Transport-Security" not in out, "never HSTS with a self-signed certificate"


# --- a real nginx ---------------------------------------------------------------------------------


@pytest.fixture
def tls_nginx(tmp_path):
    """nginx on 127.0.0.1 with tls files, HSTS, the default server and rate limits. Yields (http, https, cert)."""
    http_port, https_port = _free_port(), _free_port()
    cert, key = make_certificate(tmp_path / "tls")
    (tmp_path / "tls" / "stapling.conf").write_text("# no responder\n")
    v = settings(tls="files", tls_certificate=str(cert), tls_key=str(key), server_name=SITE, http_port=http_port,
                 https_port=https_port, rate_limit="100r/s", uwsgi_socket=str(tmp_path / "none.sock"))
    prefix = tmp_path / "nginx"
    (prefix / "acme" / ".well-known" / "acme-challenge").mkdir(parents=True)
    (prefix / "acme" / ".well-known" / "acme-challenge" / "token1").write_text("token1.thumbprint")
    text = render("nginx/site.conf.j2", ctx(v)) + render("nginx/default-server.conf.j2", ctx(v))
    text = (text.replace(tls.tls_dir(v), str(tmp_path / "tls")).replace(tls.ACME_WEBROOT, str(prefix / "acme"))
            .replace(f"    listen 127.0.0.1:{http_port};\n", "")
            .replace(f"listen {https_port} ", f"listen 127.0.0.1:{https_port} "))
    with serving(prefix, text, http_port):
        yield http_port, https_port, cert


def _client(cert: Path, **versions) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert))
    context.set_alpn_protocols(["h2", "http/1.1"])
    for name, value in versions.items():
        setattr(context, name, value)
    return context


@needs_nginx
@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")   # the client that must be refused
def test_https_negotiates_h2_on_tls12_or_13_only(tls_nginx):
    _, https_port, cert = tls_nginx
    with socket.create_connection(("127.0.0.1", https_port)) as raw:
        with _client(cert).wrap_socket(raw, server_hostname=SITE) as conn:
            assert conn.version() == "TLSv1.3" and conn.selected_alpn_protocol() == "h2"
    with socket.create_connection(("127.0.0.1", https_port)) as raw:
        with _client(cert, maximum_version=ssl.TLSVersion.TLSv1_2).wrap_socket(raw, server_hostname=SITE) as conn:
            assert conn.cipher()[0].startswith("ECDHE-") and "GCM" in conn.cipher()[0]
    old = _client(cert, minimum_version=ssl.TLSVersion.TLSv1, maximum_version=ssl.TLSVersion.TLSv1_1)
    old.set_ciphers("ALL:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", https_port)) as raw, pytest.raises(ssl.SSLError):
        old.wrap_socket(raw, server_hostname=SITE)


@needs_nginx
def test_an_unknown_sni_is_refused_and_the_site_has_hsts(tls_nginx):
    _, https_port, cert = tls_nginx
    with socket.create_connection(("127.0.0.1", https_port)) as raw, pytest.raises(ssl.SSLError):
        _client(cert, check_hostname=False).wrap_socket(raw, server_hostname="other.example.com")
    context = _client(cert)
    context.set_alpn_protocols(["http/1.1"])
    with socket.create_connection(("127.0.0.1", https_port)) as raw:
        with context.wrap_socket(raw, server_hostname=SITE) as conn:
            conn.sendall(f"GET /healthz HTTP/1.1\r\nHost: {SITE}\r\nConnection: close\r\n\r\n".encode())
            head = b"".join(iter(lambda: conn.recv(4096), b"")).split(b"\r\n\r\n")[0].decode()
    assert head.startswith("HTTP/1.1 502") and "Content-Type: application/json" in head   # no app here
    assert "Strict-Transport-Security: max-age=63072000" in head


@needs_nginx
def test_http_redirects_with_308_except_acme_challenges(tls_nginx):
    http_port, https_port, _ = tls_nginx
    conn = http.client.HTTPConnection("127.0.0.1", http_port)
    conn.request("POST", "/predict?x=1", body=b"{}", headers={"Host": SITE})
    answer = conn.getresponse()
    answer.read()
    assert answer.status == 308 and answer.getheader("Location") == f"https://{SITE}:{https_port}/predict?x=1"
    conn.request("GET", "/.well-known/acme-challenge/token1", headers={"Host": SITE})
    answer = conn.getresponse()
    assert (answer.status, answer.read()) == (200, b"token1.thumbprint")


# --- acme ------------------------------------------------------------------------------------------


def _acme(**over):
    v = settings(tls="acme", server_name=f"{SITE} www.example.com", **over)
    resources, handlers = STACK.declare(v)
    [certificate] = [r for r in resources if r.label().startswith("acme certificate")]
    return v, certificate, handlers


def test_acme_certificate_is_asked_for_after_nginx_serves_the_challenge():
    v, certificate, handlers = _acme()
    names = [h.name for h in handlers]
    assert names[names.index("reload nginx") + 1] == "obtain certificate"
    assert certificate.notify == ("obtain certificate",)
    out = render("nginx/site.conf.j2", ctx(v))
    assert f"ssl_certificate {tls.tls_dir(v)}/fullchain.pem;" in out, "a link to certbot's, or the stand-in"
    assert "Strict-Transport-Security" in out


def test_acme_certificate_decisions():
    v, certificate, _ = _acme()
    issued = certificate.parse(f"present\nserver {v.acme_server}\nname {SITE}\nname www.example.com\n")
    assert not certificate.decide(issued, None).changed
    fresh = certificate.decide(certificate.parse(""), None)
    assert fresh.reason.startswith("not issued yet") and "openssl req" in fresh.script, "a stand-in for nginx -t"
    other = certificate.decide(certificate.parse(f"present\nserver https://staging.example/dir\nname {SITE}\n"), None)
    assert other.changed and other.script == ":" and "issued for api.example.com by https://staging" in other.reason


def test_a_failing_challenge_is_one_line_and_the_retry_after_rollback_changes_nothing(tmp_path):
    """The handler's shell for real, with a certbot that fails as it does when a challenge fails."""
    _, _, handlers = _acme()
    fake = tmp_path / "bin" / "certbot"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'Certbot failed to authenticate some domains'\n"
                    "echo '  Detail: 10.0.0.1: Fetching http://www.example.com/x: Connection refused'\nexit 1\n")
    fake.chmod(0o755)
    failed = tmp_path / "failed"
    script = next(h for h in handlers if h.name == "obtain certificate").run.replace("/var/lib/provision/run/acme-failed", str(failed))
    env = {"PATH": f"{fake.parent}:/usr/bin:/bin"}
    first = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True)
    assert first.returncode == 1 and failed.read_text() == (
        f"certbot could not get a certificate for {SITE} www.example.com from "
        "https://acme-v02.api.letsencrypt.org/directory: 10.0.0.1: Fetching http://www.example.com/x: "
        "Connection refused\n")
    again = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True)
    assert again.returncode == 0 and not failed.exists()
