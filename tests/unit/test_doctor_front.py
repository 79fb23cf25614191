"""roles/doctor-front.sh run for real: the app's journal lines that explain a 502 (missing plugin,
harakiri, header buffer) and the site's certificate (expiring, expired, other names, other key) named
as findings, with a journalctl that prints a prepared journal and certificates made here.
"""

from __future__ import annotations

import datetime
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from provisioner.engine.findings import Level, parse
from provisioner.remote.quoting import assign
from roles import HERE

pytestmark = pytest.mark.unit

SITE = "api.example.com"


def certificate(directory: Path, name: str = SITE, days: int = 90) -> tuple[Path, Path]:
    """A self-signed certificate for `name` and its key, valid from a year ago for `days` from now
    (negative: expired)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=365))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256()))
    (directory / "fullchain.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "privkey.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                              serialization.PrivateFormat.PKCS8,
                                                              serialization.NoEncryption()))
    return directory / "fullchain.pem", directory / "privkey.pem"


def doctor(tmp_path: Path, journal: str = "", cert: Path | str = "", key: Path | str = "", names: str = SITE):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (tmp_path / "journal").write_text(journal)
    (bin_dir / "journalctl").write_text(f"#!/bin/sh\ncat {tmp_path / 'journal'}\n")
    (bin_dir / "journalctl").chmod(0o755)
    script = "\n".join([assign("UNIT", "uwsgi-model_api"), assign("CERT", cert), assign("KEY", key),
                        assign("NAMES", names), (HERE / "doctor-front.sh").read_text()])
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True,
                         env={"PATH": f"{bin_dir}:/usr/bin:/bin"}).stdout
    found, lines = parse(out)
    assert not lines, lines
    return {(f.level, f.check): f for f in found}


def test_a_healthy_journal_and_no_tls_find_nothing(tmp_path):
    assert doctor(tmp_path, "*** uWSGI is ready\nspawned uWSGI worker 1\n") == {}


@pytest.mark.parametrize("line, level, check, fix", [
    ("-- unavailable modifier requested: 0 --", Level.FAIL, "plugin", "uwsgi_plugins: python3"),
    ("*** HARAKIRI ON WORKER 1 (pid: 91, try: 1) ***\nHARAKIRI !!! worker 1 status !!!", Level.WARN, "harakiri",
     "raise uwsgi_harakiri"),
    ("invalid request block size: 5961 (max 4096)...skip", Level.WARN, "header buffer", "raise uwsgi_buffer_size"),
])
def test_journal_signatures_are_named_with_their_fix(tmp_path, line, level, check, fix):
    finding = doctor(tmp_path, f"spawned uWSGI worker 1\n{line}\n{line}\n")[(level, check)]
    assert finding.found.startswith("2 x ") and fix in finding.fix


def test_a_good_certificate_is_ok(tmp_path):
    cert, key = certificate(tmp_path / "tls")
    assert list(doctor(tmp_path, cert=cert, key=key)) == [(Level.OK, "certificate")]


def test_an_expiring_or_expired_certificate(tmp_path):
    cert, key = certificate(tmp_path / "soon", days=3)
    assert "in less than 14 days" in doctor(tmp_path, cert=cert, key=key)[(Level.WARN, "certificate")].found
    cert, key = certificate(tmp_path / "old", days=-1)
    assert doctor(tmp_path, cert=cert, key=key)[(Level.FAIL, "certificate")].found.startswith("expired on")


def test_a_certificate_for_other_names_or_with_another_key(tmp_path):
    cert, key = certificate(tmp_path / "other", name="old.example.com")
    found = doctor(tmp_path, cert=cert, key=key)[(Level.FAIL, "certificate")].found
    assert found == f"it does not cover {SITE}: clients asking for {SITE} refuse it"
    cert, _ = certificate(tmp_path / "a")
    _, other_key = certificate(tmp_path / "b")
    assert "does not belong" in doctor(tmp_path, cert=cert, key=other_key)[(Level.FAIL, "certificate")].found
