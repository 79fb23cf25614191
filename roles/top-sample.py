"""One sample for `provision top`, taken on the host: SECONDS between two looks at nginx's status page
and the app's uWSGI stats, and the access-log lines written in between.

argv: STATUS_ADDRESS (HOST:PORT) ACCESS_LOG STATS_SOCKET SECONDS. Prints one JSON object. Reads only.
"""
import json
import os
import socket
import sys
import time

status_address, access_log, stats_socket, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
status_host, _, status_port = status_address.rpartition(":")


def nginx_requests():
    """nginx's count of requests so far (the status page's own request counts too) and its open
    connections. Plain HTTP/1.0 on a socket: urllib would double the sampler's start-up time."""
    with socket.create_connection((status_host, int(status_port)), timeout=5) as s:
        s.sendall(b"GET /nginx_status HTTP/1.0\r\nHost: localhost\r\n\r\n")
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
    lines = answer.decode().split("\r\n\r\n", 1)[1].splitlines()
    return int(lines[2].split()[2]), int(lines[0].split(":")[1])


def uwsgi_stats():
    """uWSGI's stats JSON, or None when its socket does not answer."""
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(stats_socket)
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return json.loads(b"".join(chunks))
    except (OSError, ValueError):
        return None


def rss_bytes(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return 0


def status_and_seconds(line):
    """A line of the site's access log: access_log_format json (an object) or combined with the
    request time last."""
    if line.startswith("{"):
        entry = json.loads(line)
        return int(entry["status"]), float(entry["request_time"])
    return int(line.split('"', 2)[2].split()[0]), float(line.rsplit(" ", 1)[1])


def percentile(values, share):
    return values[min(len(values) - 1, int(share * len(values)))] if values else None


started = time.monotonic()
requests_before, _ = nginx_requests()
try:
    log = open(access_log, "rb")
    log.seek(0, os.SEEK_END)
except OSError:
    log = None
time.sleep(seconds)
requests_after, active = nginx_requests()
took = time.monotonic() - started
statuses, timings = [], []
for line in (log.read().decode(errors="replace").splitlines() if log else []):
    try:
        status, request_seconds = status_and_seconds(line)
    except (IndexError, KeyError, TypeError, ValueError):
        continue  # a line of another format
    timings.append(request_seconds * 1000)
    statuses.append(status)
timings.sort()
stats = uwsgi_stats()
workers = stats["workers"] if stats else []
answered = len(statuses) or 1
cpu = os.times()
print(json.dumps({
    "seconds": round(took, 3),
    "requests_per_s": round((requests_after - requests_before - 1) / took, 1),
    "active_connections": active,
    "logged": len(statuses),
    # 499: nginx's note of a client that closed its connection before the answer (as any load
    # generator does as it stops), not an answer; counted apart.
    "share_4xx": round(sum(400 <= s < 500 and s != 499 for s in statuses) / answered, 4),
    "share_5xx": round(sum(s >= 500 for s in statuses) / answered, 4),
    "share_client_closed": round(sum(s == 499 for s in statuses) / answered, 4),
    "p50_ms": percentile(timings, 0.50),
    "p99_ms": percentile(timings, 0.99),
    "workers_busy": sum(w.get("status") == "busy" for w in workers),
    "workers_idle": sum(w.get("status") == "idle" for w in workers),
    "listen_queue": stats.get("listen_queue") if stats else None,
    "app_memory_bytes": sum(rss_bytes(w["pid"]) for w in workers) + (rss_bytes(stats["pid"]) if stats else 0),
    "uwsgi": stats is not None,
    "sampler_cpu_seconds": round(cpu.user + cpu.system, 4),
}))
