"""The app's uWSGI stats in Prometheus' text format, served on the host's private address.

Debian packages no uWSGI exporter, and PyPI's are stale or unproven (docs/settings.md, Metrics): this
is the smallest translation of uWSGI's stats JSON (the stats socket `provision top` reads), standard
library only, run by the system python3 as the app's user (only it and root may read the socket).

argv: LISTEN_ADDRESS PORT STATS_SOCKET. GET /metrics reads the socket once per scrape.
"""
import json
import socket
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

# (metric, stats key, type, help): one sample per worker, labelled with its id
PER_WORKER = (
    ("uwsgi_worker_requests_total", "requests", "counter", "Requests the worker has answered."),
    ("uwsgi_worker_exceptions_total", "exceptions", "counter", "Exceptions raised in the worker's requests."),
    ("uwsgi_worker_harakiri_total", "harakiri_count", "counter", "Requests killed by harakiri in the worker."),
    ("uwsgi_worker_respawns_total", "respawn_count", "counter", "Times the worker was respawned."),
    ("uwsgi_worker_transmitted_bytes_total", "tx", "counter", "Bytes the worker has sent."),
)


def read_stats(path):
    """uWSGI's stats JSON, or None when its socket does not answer (the app is down)."""
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(path)
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return json.loads(b"".join(chunks))
    except (OSError, ValueError):
        return None


def metrics(stats):
    """Prometheus' text format of one stats JSON (None: only uwsgi_up 0)."""
    out = []

    def family(name, kind, text, samples):
        out.extend([f"# HELP {name} {text}", f"# TYPE {name} {kind}"])
        out.extend(f"{name}{labels} {value}" for labels, value in samples)

    family("uwsgi_up", "gauge", "1 if the stats socket answered.", [("", int(stats is not None))])
    if stats is None:
        return "\n".join(out) + "\n"
    workers = stats.get("workers", [])
    family("uwsgi_listen_queue", "gauge", "Connections waiting in the socket's accept queue.",
           [("", stats.get("listen_queue", 0))])
    family("uwsgi_listen_queue_errors_total", "counter", "Connections the full accept queue refused.",
           [("", stats.get("listen_queue_errors", 0))])
    family("uwsgi_requests_total", "counter", "Requests all workers have answered.",
           [("", sum(w.get("requests", 0) for w in workers))])
    statuses = sorted({str(w.get("status", "unknown")) for w in workers} | {"busy", "idle"})
    family("uwsgi_workers", "gauge", "Workers by status (busy, idle, cheap, ...).",
           [(f'{{status="{s}"}}', sum(str(w.get("status")) == s for w in workers)) for s in statuses])
    for name, key, kind, text in PER_WORKER:
        family(name, kind, text, [(f'{{worker="{int(w.get("id", 0))}"}}', w.get(key, 0)) for w in workers])
    family("uwsgi_worker_average_response_time_seconds", "gauge", "The worker's average response time.",
           [(f'{{worker="{int(w.get("id", 0))}"}}', w.get("avg_rt", 0) / 1e6) for w in workers])
    return "\n".join(out) + "\n"


class Scrape(BaseHTTPRequestHandler):
    stats_socket = ""

    def do_GET(self):
        if self.path.split("?")[0] != "/metrics":
            self.send_error(404)
            return
        body = metrics(read_stats(self.stats_socket)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        """Scrapes every few seconds are not news: no line each in the journal."""


def serve(address, port, stats_socket):
    Scrape.stats_socket = stats_socket
    server_class = type("Server", (HTTPServer,), {"address_family": socket.AF_INET6 if ":" in address
                                                  else socket.AF_INET})
    server_class((address, port), Scrape).serve_forever()


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), sys.argv[3])
