"""Load on a lab host's API with wrk, measured in short slices: the soak test and the served benchmark.

A slice is one wrk run. Short slices show what one long run hides: a stretch with no answer at all.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PREDICT_BODY = '{"features": [5.1, 3.5, 1.4, 0.2]}'
POST_JSON = """\
wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
"""


@dataclass(frozen=True)
class Slice:
    connections: int
    seconds: float
    answered: int  # responses of any status
    errors: int  # connect, read, write errors and timeouts
    non_2xx: int
    p99_ms: float

    @property
    def failed(self) -> int:
        return self.errors + self.non_2xx

    @property
    def rate(self) -> float:
        return self.answered / self.seconds


def post_script(body: str = PREDICT_BODY) -> Path:
    """A wrk script that POSTs `body` as JSON (a file wrk can read; removed with the process's temp dir)."""
    path = Path(tempfile.mkdtemp(prefix="provision-wrk-")) / "post.lua"
    path.write_text(POST_JSON.format(body=body))
    return path


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]


def run_slice(url: str, connections: int, seconds: int, script: Path | None = None, timeout: int = 5,
              headers: tuple[str, ...] = ()) -> Slice:
    """One wrk run of `seconds` at `connections` against `url` (GET, or what `script` says)."""
    threads = min(2, connections)
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", f"{timeout}s", "--latency",
            *[arg for header in headers for arg in ("-H", header)]]
    out = subprocess.run([*argv, *(["-s", str(script)] if script else []), url], capture_output=True, text=True,
                         timeout=seconds + 60).stdout
    match = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)\b", out)
    took = _ms(match.group(2) + match.group(3)) / 1000
    p99 = re.search(r"99%\s+([\d.]+(?:us|ms|s|m))", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return Slice(connections=connections, seconds=took, answered=int(match.group(1)),
                 errors=sum(map(int, re.findall(r"(?:connect|read|write|timeout) (\d+)", out))),
                 non_2xx=int(non_2xx.group(1)) if non_2xx else 0, p99_ms=_ms(p99.group(1)) if p99 else 0.0)


def soak(url: str, total_seconds: float, slice_seconds: int, concurrency: tuple[int, ...],
         script: Path | None = None) -> list[Slice]:
    """Slices back to back for `total_seconds`, cycling through `concurrency`."""
    slices: list[Slice] = []
    started = time.monotonic()
    while time.monotonic() - started < total_seconds:
        slices.append(run_slice(url, concurrency[len(slices) % len(concurrency)], slice_seconds, script))
    return slices


# Shell for a lab host: nginx's record of the answers that were not a 2xx (a client that left, 499,
# aside) and its error logs' last lines, for a load test's failure message.
NGINX_FAILURES = ("awk '$9 !~ /^(2..|499)$/' /var/log/nginx/model_api.access.log | tail -n 5; "
                  "grep -hv '\\[notice\\]' /var/log/nginx/model_api.error.log /var/log/nginx/error.log | tail -n 8")
