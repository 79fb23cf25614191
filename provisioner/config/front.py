"""Kinds of the settings of the production front (roles/front.py, roles/tls.py): allowed methods, rate
limits and HTTPS.

Each check returns the value in the one form the nginx templates read, so a template never parses
what a user wrote.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm

from provisioner.config.kinds import Invalid, Kind, text
from provisioner.config.secret import Secret
from provisioner.errors import UserError

_METHOD = re.compile(r"[A-Z]+")
_RATE = re.compile(r"[1-9][0-9]*r/[sm]")
# A location of a rate limit: an optional method, then a path prefix nginx can match literally.
_LOCATION = re.compile(r"(?:([A-Z]+) +)?(/[A-Za-z0-9._~/-]*)")


def _methods(value: Any) -> str:
    words = value if isinstance(value, list) else str(value).replace(",", " ").split() if isinstance(value, str) else None
    if not words or not all(isinstance(w, str) and _METHOD.fullmatch(w.strip().upper()) for w in words):
        raise Invalid()
    methods = list(dict.fromkeys(w.strip().upper() for w in words))
    if "GET" in methods and "HEAD" not in methods:
        methods.insert(methods.index("GET") + 1, "HEAD")   # nginx answers HEAD wherever it answers GET
    return " ".join(methods)


def _rate(value: Any) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or not _RATE.fullmatch(value.strip()):
        raise Invalid()
    return value.strip()


def _limit(value: Any, where: str) -> dict[str, Any]:
    """One location's limit: "2r/s", "2r/s burst=5" or {rate: 2r/s, burst: 5}."""
    if isinstance(value, str):
        rate, _, burst = value.strip().partition(" burst=")
        value = {"rate": rate, "burst": burst} if burst else {"rate": rate}
    if not isinstance(value, dict) or set(value) - {"rate", "burst"} or "rate" not in value:
        raise Invalid(f"{where}: write a rate like 2r/s, '2r/s burst=5' or {{rate: 2r/s, burst: 5}}")
    rate = _rate(value["rate"])
    if not rate:
        raise Invalid(f"{where}: the rate is missing")
    burst = value.get("burst", 0)
    if isinstance(burst, str) and burst.strip().isdigit():
        burst = int(burst)
    if not isinstance(burst, int) or isinstance(burst, bool) or burst < 0:
        raise Invalid(f"{where}: burst must be an integer >= 0")
    return {"rate": rate, "burst": burst}


def _locations(value: Any) -> dict[str, dict[str, Any]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Invalid()
    out = {}
    for key, limit in value.items():
        match = _LOCATION.fullmatch(key.strip()) if isinstance(key, str) else None
        if not match:
            raise Invalid(f"{key!r} is not '[METHOD ]/path' (path letters, digits and ._~/- only)")
        method, path = match.groups()
        out[f"{method} {path}" if method else path] = _limit(limit, key)
    # Most specific first: nginx's map takes the first regex that matches, as a location would.
    return dict(sorted(out.items(), key=lambda item: (-len(item[0].split()[-1]), " " not in item[0])))


def _prefixes(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    items = value if isinstance(value, list) else None
    if items is None or not all(isinstance(item, str) and _LOCATION.fullmatch(item) and " " not in item
                                for item in items):
        raise Invalid()
    return list(dict.fromkeys(items))


METHODS = Kind("HTTP methods separated by spaces", _methods, "GET HEAD POST")
RATE = Kind("an nginx rate like 10r/s or 600r/m (empty = off)", _rate, "10r/s")
PREFIXES = Kind("a list of URL path prefixes (letters, digits and ._~/-)", _prefixes, "[/healthz, /models]")
RATE_LOCATIONS = Kind("a mapping of '[METHOD ]/path' to a rate", _locations,
                      "{'POST /predict': '2r/s burst=5', /healthz: 50r/s}")


def _waf_mode(value: Any) -> str:
    if value is False or value is None:   # YAML reads an unquoted `off` as false
        return "off"
    if value not in ("off", "detect", "block"):
        raise Invalid()
    return value


def _rule_ids(value: Any) -> list[int]:
    if value is None:
        return []
    ids = value if isinstance(value, list) else None
    if ids is None or not all(isinstance(i, int) and not isinstance(i, bool) and 0 < i < 10_000_000 for i in ids):
        raise Invalid()
    return list(dict.fromkeys(ids))


def _tls_mode(value: Any) -> str:
    if value is False or value is None:   # YAML reads an unquoted `off` as false
        return "off"
    if value not in ("off", "self-signed", "files", "acme"):
        raise Invalid()
    return value


def _pem(secret: bool):
    """PEM text (kept secret for a key) or a file on this machine (made absolute by check_tls)."""
    def check(value: Any) -> str | Path:
        if value is None or value == "":
            return ""
        if isinstance(value, str) and value.lstrip().startswith("-----BEGIN "):
            return Secret(value) if secret else value
        if not isinstance(value, (str, Path)) or "\n" in str(value):
            raise Invalid()
        return Path(value).expanduser()
    return check


WAF_MODE = Kind("off, detect or block", _waf_mode, "block")
RULE_IDS = Kind("a list of ModSecurity rule ids", _rule_ids, "[920350, 942100]")
TLS_MODE = Kind("off, self-signed, files or acme", _tls_mode, "acme")
CERTIFICATE = Kind("PEM text or a file on this machine", _pem(secret=False), "certs/api.example.com.pem")
PRIVATE_KEY = Kind("PEM text or a file on this machine", _pem(secret=True), "!vault | ...")
EMAIL = text("an e-mail address (or empty)", r"([^@\s;{}#]+@[^@\s;{}#]+)?", "ops@example.com")
ACME_URL = text("an https URL of an ACME directory", r"https://[^\s;{}#'\"]+",
                "https://acme-v02.api.letsencrypt.org/directory")


def check_tls(values: dict, bases: dict, where: str, base_dir: Path) -> None:
    """What the TLS settings need together: files that exist for `files`, host names for `acme`."""
    for name in ("tls_certificate", "tls_key"):
        value = values[name]
        if isinstance(value, Path):
            path = value if value.is_absolute() else (Path(bases.get(name, base_dir)) / value).resolve()
            if not path.is_file():
                raise UserError(f"{name} of {where} is {path}, which is not a file",
                                f"set {name} to the PEM file (relative paths are relative to the inventory file)")
            values[name] = path
    mode = values["tls"]
    if mode == "files" and not (values["tls_certificate"] and values["tls_key"]):
        raise UserError(f"tls of {where} is files but tls_certificate or tls_key is not set",
                        "set tls_certificate (the chain) and tls_key (the key, best as !vault) or pick another tls")
    if mode == "files":
        _check_pair(values["tls_certificate"], values["tls_key"], where)
    names = values["server_name"].split()
    if mode == "acme" and (names == ["_"] or any("*" in name for name in names)):
        raise UserError(f"tls of {where} is acme but server_name is {values['server_name']!r}: an HTTP-01 "
                        "certificate needs the site's host names, without wildcards",
                        "set server_name to the names clients use (e.g. api.example.com)")


def _pem_text(value: str | Path) -> bytes:
    return value.read_bytes() if isinstance(value, Path) else str(value).encode()


def _check_pair(certificate: str | Path, key: str | Path, where: str) -> None:
    """The certificate chain is PEM, the key is a PEM private key without a passphrase, and the key is the
    certificate's: nginx would refuse any of these only on the host, after the deploy started."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    shown = f" ({certificate})" if isinstance(certificate, Path) else ""
    try:
        chain = x509.load_pem_x509_certificates(_pem_text(certificate))
    except ValueError:
        raise UserError(f"tls_certificate of {where}{shown} is not a PEM certificate chain",
                        "give the chain as PEM text or file (-----BEGIN CERTIFICATE-----; convert DER with "
                        "openssl x509 -inform der -in cert.der -out cert.pem)") from None
    try:
        private = serialization.load_pem_private_key(_pem_text(key), password=None)
    except TypeError:
        raise UserError(f"tls_key of {where} is encrypted with a passphrase, which nginx cannot type",
                        "remove the passphrase (openssl pkey -in key.pem -out plain.pem) and encrypt the "
                        "file with ansible-vault instead") from None
    except (ValueError, UnsupportedAlgorithm):
        raise UserError(f"tls_key of {where} is not a PEM private key",
                        "give the key as PEM text or file (-----BEGIN PRIVATE KEY-----)") from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if chain[0].public_key().public_bytes(serialization.Encoding.PEM, public) != \
            private.public_key().public_bytes(serialization.Encoding.PEM, public):
        raise UserError(f"tls_key of {where} is not the key of tls_certificate{shown} (the first certificate "
                        "of the chain)", "give the key the certificate was issued for, or put the site's "
                        "certificate first in the chain")
