"""One sample for `provision top`, taken on the host: SECONDS between two looks at nginx's status page
and each app's uWSGI stats, and the access-log lines written in between.

argv: STATUS_ADDRESS (HOST:PORT) ACCESS_LOG SECONDS, then for each app: NAME UPSTREAM STATS_SOCKET
(UPSTREAM: the address nginx passes the app's requests to, as the log's upstream_addr names it).
Prints one JSON object: the host's figures, and with several apps each app's under "apps" (its
requests are the log lines nginx passed to it). Reads only.
"""
import json
import os
import socket
import sys
import time

status_address, access_log, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
apps = [tuple(sys.argv[i:i + 3]) for i in range(4, len(sys.argv), 3)]  # (name, upstream, stats socket)
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


def uwsgi_stats(stats_socket):
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


def status_seconds_upstream(line):
    """A line of the site's access log: access_log_format json (an object) or combined with the
    upstream's address quoted and the request time last. The upstream is the last one nginx tried."""
    if line.startswith("{"):
        entry = json.loads(line)
        status, took, upstream = entry["status"], entry["request_time"], entry.get("upstream_addr", "")
    else:
        head, took = line.rsplit(" ", 1)
        status, upstream = line.split('"', 2)[2].split()[0], head[:-1].rpartition('"')[2]
    return int(status), float(took), upstream.replace(" : ", ", ").rpartition(", ")[2]


def percentile(values, share):
    return values[min(len(values) - 1, int(share * len(values)))] if values else None


def figures(requests, stats):
    """What top shows of some requests ((status, milliseconds) each) and of the uWSGI stats of the
    apps that answered them."""
    statuses, timings = [status for status, _ in requests], sorted(ms for _, ms in requests)
    workers = [w for one in stats for w in one["workers"]]
    answered = len(statuses) or 1
    return {
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
        "listen_queue": sum(one.get("listen_queue", 0) for one in stats) if stats else None,
        "app_memory_bytes": sum(rss_bytes(w["pid"]) for w in workers) + sum(rss_bytes(one["pid"]) for one in stats),
        "uwsgi": bool(stats),
    }


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
lines = []  # (status, milliseconds, upstream)
for line in (log.read().decode(errors="replace").splitlines() if log else []):
    try:
        status, request_seconds, upstream = status_seconds_upstream(line)
    except (IndexError, KeyError, TypeError, ValueError):
        continue  # a line of another format
    lines.append((status, request_seconds * 1000, upstream))
stats = {name: answer for name, _, stats_socket in apps if (answer := uwsgi_stats(stats_socket))}  # those that answer
sample = {"seconds": round(took, 3), "requests_per_s": round((requests_after - requests_before - 1) / took, 1),
          "active_connections": active, **figures([(s, ms) for s, ms, _ in lines], list(stats.values()))}
if len(apps) > 1:
    sample["apps"] = []
    for name, upstream, _ in apps:
        passed = [(s, ms) for s, ms, to in lines if to == upstream]
        sample["apps"].append({"app": name, "requests_per_s": round(len(passed) / took, 1),
                               **figures(passed, [stats[name]] if name in stats else [])})
cpu = os.times()
sample["sampler_cpu_seconds"] = round(cpu.user + cpu.system, 4)
print(json.dumps(sample))
