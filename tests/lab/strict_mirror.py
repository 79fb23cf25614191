"""A stand-in for a strict Debian mirror on loopback: HTTP/1.1 as RFC 9112 asks of a server.

A request that carries any header twice (two `Host:` lines, as apt-cacher-ng sent) is answered
400, as the mirror this machine reaches does. Files are served slowly enough (in chunks) that
concurrent clients really overlap, with Last-Modified and If-Modified-Since like a real mirror.
Every request is recorded, so a test can count what reached the upstream.
"""

from __future__ import annotations

import email.utils
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Seen:
    path: str
    status: int
    duplicated: list[str]


@dataclass
class StrictMirror:
    files: dict[str, bytes] = field(default_factory=dict)
    modified: dict[str, float] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    chunk_pause: float = 0.02  # per 16 KiB: a 160 KiB InRelease takes ~0.2 s, as from a real mirror

    def put(self, path: str, body: bytes) -> None:
        self.files[path] = body
        self.modified[path] = float(int(time.time()))

    def fetches(self, path: str) -> int:
        return sum(1 for s in self.seen if s.path == path and s.status == 200)

    def refused(self) -> list[Seen]:
        return [s for s in self.seen if s.status == 400]

    def serve(self, port: int = 0) -> tuple[ThreadingHTTPServer, int]:
        """Start on 127.0.0.1 (`port`, or a free one) in a daemon thread; returns the server and its port."""
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet: the test reads `seen`
                pass

            def do_GET(self):
                names = [k.lower() for k in self.headers.keys()]
                duplicated = sorted({n for n in names if names.count(n) > 1})
                path = self.path
                if duplicated:
                    return self._answer(path, 400, b"", duplicated)
                if path not in mirror.files:
                    return self._answer(path, 404, b"not found\n", [])
                since = self.headers.get("If-Modified-Since")
                if since and email.utils.parsedate_to_datetime(since).timestamp() >= mirror.modified[path]:
                    return self._answer(path, 304, None, [])
                return self._answer(path, 200, mirror.files[path], [])

            def _answer(self, path: str, status: int, body: bytes | None, duplicated: list[str]):
                mirror.seen.append(Seen(path, status, duplicated))
                self.send_response(status)
                if path in mirror.modified:
                    self.send_header("Last-Modified", email.utils.formatdate(mirror.modified[path], usegmt=True))
                self.send_header("Content-Length", str(len(body or b"")))
                if status == 400:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                for k in range(0, len(body or b""), 16384):
                    self.wfile.write(body[k:k + 16384])
                    time.sleep(mirror.chunk_pause)

        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, server.server_address[1]
