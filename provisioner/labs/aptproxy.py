"""The lab hosts' only way out: an nginx caching proxy that forwards only to Debian's mirror.

Each lab runs its own nginx (its own port, listen addresses and cache) and tracks it by PID. One
instance serves every Debian release (bookworm, trixie, ...): the cache is keyed by URL path.

Why nginx and not apt-cacher-ng (measured with bench/apt_proxy.py against a strict stand-in mirror,
16 clients asking for one InRelease at once, docs in README "Container lab"):
- apt-cacher-ng 3.7.4 told not to cache InRelease (the only way to avoid its concurrent-refresh race,
  which cut answers short) passes the client's headers through and adds its own: two `Host:` headers,
  which a strict HTTP/1.1 server (RFC 9112) and Debian's mirror here answer with 400;
- allowed to cache InRelease, it races: several hosts refreshing one file in the same second get it
  cut short ("Failure to move file"), and their `apt-get update` may wait forever;
- nginx sends exactly one set of headers of its own making upstream, and `proxy_cache_lock` lets
  one request fill a cache entry while the others wait for it: every answer whole, one upstream fetch.

What is cached how: files under `by-hash/` and `pool/` never change (30 days); every other index file
(InRelease, Release, lists not fetched by hash) is served from the cache for INDEX_VALID seconds and
then revalidated with If-Modified-Since; a stale copy is served while one request refreshes it.
apt's `Cache-Control: max-age=0` on index requests is ignored, as a shared cache may.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path

from . import common

MIRROR_HOST = "deb.debian.org"      # the only name hosts may ask for (their sources.list names it)
MIRROR_UPSTREAM = "deb.debian.org:80"  # where it is fetched from; a test points it at a stand-in
INDEX_VALID = 60                      # seconds an index file is served before it is revalidated
CONF_NAME = "provision-apt-proxy.conf"  # in our daemon's command line: how a PID is known to be ours
PROCESS = CONF_NAME

_CONF = """\
# written by provision: the lab hosts' apt proxy (provisioner/labs/aptproxy.py)
daemon off;
worker_processes 2;
pid {workdir}/nginx.pid;
user root;  # as apt-cacher-ng ran: the cache and state dirs are root's
error_log {log_dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    log_format lab '$remote_addr [$time_local] "$request" $status $body_bytes_sent cache=$upstream_cache_status';
    access_log {log_dir}/access.log lab;
    client_body_temp_path {workdir}/tmp/body;
    proxy_temp_path {workdir}/tmp/proxy;
    fastcgi_temp_path {workdir}/tmp/fastcgi;
    uwsgi_temp_path {workdir}/tmp/uwsgi;
    scgi_temp_path {workdir}/tmp/scgi;
    proxy_cache_path {cache_dir} levels=1:2 keys_zone=debian:16m max_size=20g inactive=60d use_temp_path=off;

    upstream mirror {{
        server {upstream};
        keepalive 8;
    }}

    server {{
{listen}
        # apt asks a proxy with the whole URL (GET http://deb.debian.org/debian/...): only Debian's mirror
        if ($host != "{mirror_host}") {{ return 403; }}

        proxy_http_version 1.1;
        proxy_set_header Host {mirror_host};
        proxy_set_header Connection "";
        proxy_cache debian;
        proxy_cache_key $uri;
        proxy_cache_lock on;              # one request fills an entry; the others wait for it
        proxy_cache_lock_timeout 120s;
        proxy_cache_lock_age 120s;
        proxy_cache_revalidate on;        # an expired index is checked with If-Modified-Since
        proxy_cache_use_stale updating error timeout http_500 http_502 http_503 http_504;
        proxy_ignore_headers Cache-Control Expires Set-Cookie X-Accel-Expires;
        proxy_connect_timeout 10s;
        proxy_read_timeout 60s;

        location ~ ^/debian(-security)?/(pool|.*/by-hash)/ {{
            proxy_cache_valid 200 30d;
            proxy_pass http://mirror;
        }}
        location ~ ^/debian(-security)?/ {{
            proxy_cache_valid 200 {index_valid}s;
            proxy_pass http://mirror;
        }}
        location / {{ return 403; }}
    }}
}}
"""


def _render(workdir: Path, cache_dir: Path, port: int, addresses: list[str], upstream: str,
            index_valid: int) -> str:
    listen = "\n".join(f"        listen {a}:{port};" for a in addresses)
    return _CONF.format(workdir=workdir, log_dir=workdir / "log", cache_dir=cache_dir, listen=listen,

                        upstream=upstream, mirror_host=MIRROR_HOST, index_valid=index_valid)


# a daemon started with another configuration is restarted
CONF_DIGEST = hashlib.sha256(f"{_CONF}{MIRROR_UPSTREAM}{INDEX_VALID}".encode()).hexdigest()[:16]


def url_for(address: str, port: int) -> str:
    return f"http://{address}:{port}/"


def access_log(workdir: Path) -> Path:
    """One line per request: client address, request, status, cache HIT/MISS/EXPIRED/UPDATING."""
    return workdir / "log" / "access.log"


def start(workdir: Path, cache_dir: Path, port: int, addresses: list[str], *,
          upstream: str = MIRROR_UPSTREAM, index_valid: int = INDEX_VALID) -> int:
    """Write the configuration under `workdir`, start nginx listening on `addresses` (all local)
    and return its master's PID once it accepts connections on each of them."""
    log_dir = workdir / "log"
    for d in (log_dir, cache_dir, workdir / "tmp"):
        d.mkdir(parents=True, exist_ok=True)
    conf = workdir / CONF_NAME
    common.write_atomic(conf, _render(workdir, cache_dir, port, addresses, upstream, index_valid))
    out_path, pid_file = workdir / "daemon.log", workdir / "nginx.pid"
    pid_file.unlink(missing_ok=True)
    with open(out_path, "ab") as out:
        proc = subprocess.Popen([common.which("nginx") or "nginx", "-c", str(conf), "-p", str(workdir)],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
    # nginx writes its pid file only once every listening socket is bound: an address held by
    # another process (it retries for 2.5 s) ends it instead.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and proc.poll() is None:
        if _read(pid_file).strip() == str(proc.pid):
            return proc.pid
        time.sleep(0.02)
    common.stop_pid(proc.pid, PROCESS)
    raise RuntimeError(f"the apt proxy (nginx) did not start on {', '.join(addresses)} port {port}: "
                       f"{_read(out_path)[-800:]}{_read(log_dir / 'error.log')[-800:]}")


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
