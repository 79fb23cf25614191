"""Kinds of the settings of the production front (roles/front.py): allowed methods and rate limits.

Each check returns the value in the one form the nginx templates read, so a template never parses
what a user wrote.
"""

from __future__ import annotations

import re
from typing import Any

from provisioner.config.kinds import Invalid, Kind

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


METHODS = Kind("HTTP methods separated by spaces", _methods, "GET HEAD POST")
RATE = Kind("an nginx rate like 10r/s or 600r/m (empty = off)", _rate, "10r/s")
RATE_LOCATIONS = Kind("a mapping of '[METHOD ]/path' to a rate", _locations,
                      "{'POST /predict': '2r/s burst=5', /healthz: 50r/s}")
