"""Benchmark: how a balancer reaches its app hosts. HTTP to each app host's own nginx (what provision
deploys) against the uwsgi protocol over TCP straight to each app host's uWSGI, in the same run on the
same lab hosts (issue 10, section 1; docs/topology.md says what was chosen and why).

    sudo python3 bench/balancer_protocol.py [--rounds 3] [--slice 5] [--sustain 60] [--keep]   # ~15 minutes

A balancer and 2 app hosts (Debian 12 lab containers) deployed by `provision deploy`. Then, for the
bench only (provision never builds this):
- on each app host a second uWSGI from a copy of the deployed ini, same release, same processes and
  threads, on a TCP socket at the host's address (port 3031), and an nftables table of the bench's own
  that admits that port from the balancer only (the uwsgi protocol has no authentication);
- on the balancer a copy of its deployed server block on port 8080 whose upstream `uwsgi_pass`es to those
  sockets with the same balancing and retry settings (uwsgi_next_upstream has no http_502: a stopped
  uWSGI refuses the connection, which `error` retries), but no upstream keepalive: nginx reuses upstream
  connections for proxy_pass and fastcgi_pass only, so every request opens a TCP connection.
wrk runs in the controller's namespace against both balancer ports: POST /predict and GET /healthz at
1/32/128 connections; per round each path gets one slice per endpoint and concurrency, the paths taking
turns; then 60-s POST slices at 128 connections, the paths in the order A B B A (a connection per request
could run a balancer out of local ports only over time). Per slice: successful (2xx) requests/s,
p50/p99, errors, the machine's load average, the CPU time each lab host's container used (its cgroup's
cpu.stat) per successful request, and the TCP connections in TIME-WAIT on each tier. Figures go to
bench/results/balancer-protocol.json. Absolute figures drift with the shared machine's load: compare the
two paths within one run.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import yaml
from common import bench_lab, save
from served import ERROR_KINDS, WARMUP_SECONDS, wrk
from served_servers import APP, DEPLOYED_INI, _transient, deploy, ssh, wait_answering

from provisioner.labs.container import network
from provisioner.labs.container import state as lab_state
from provisioner.labs.load import post_script

INSTANCE = "bp"
APP_HOSTS = 2
CONCURRENCY = (1, 32, 128)
UWSGI_PORT = 3031
PATHS = {"http": 80, "uwsgi-tcp": 8080}  # balancer port of each path
ENDPOINTS = ("POST /predict", "GET /healthz")
SITE = f"/etc/nginx/sites-available/{APP}"
UPSTREAM = f"/etc/nginx/conf.d/provision-{APP}-upstream.conf"
BENCH_SITE = "/etc/nginx/sites-enabled/bench-uwsgi-tcp.conf"
BENCH_INI = "/etc/uwsgi/bench-uwsgi-tcp.ini"
# The deployed balancer's `location /` passes with these lines; the bench's copy replaces them.
PROXY_FIRST, PROXY_LAST = "proxy_pass http://", "proxy_next_upstream_tries"
UWSGI_PASS = """\
        include uwsgi_params;
        uwsgi_param HTTP_HOST $host$provision_{app}_host_port;
        uwsgi_param HTTP_X_FORWARDED_PROTO $scheme;
        uwsgi_param HTTP_X_FORWARDED_SSL $https if_not_empty;
        uwsgi_param HTTP_X_FORWARDED_FOR $remote_addr;
        uwsgi_pass bench_uwsgi_tcp;
        uwsgi_connect_timeout 1s;
        uwsgi_read_timeout 65s;
        uwsgi_next_upstream error timeout http_503 non_idempotent;
        uwsgi_next_upstream_tries 3;
"""
FIREWALL = """\
table inet bench_uwsgi_tcp
delete table inet bench_uwsgi_tcp
table inet bench_uwsgi_tcp {{
    chain input {{
        type filter hook input priority filter - 10; policy accept;
        tcp dport {port} ip saddr {balancer} accept
        tcp dport {port} drop
    }}
}}
"""


def write_inventory(path: Path, balancer, apps: list) -> None:
    """The lab hosts as a site: group lb in front of group app (POST retries allowed, as in the lab test)."""
    path.write_text(yaml.safe_dump({"all": {
        "vars": {"ansible_user": "deploy", "ansible_ssh_private_key_file": str(balancer.key_file),
                 "upstream_retry_non_idempotent": True},
        "hosts": {h.name: {"ansible_host": h.address} for h in (balancer, *apps)},
        "children": {"lb": {"hosts": {balancer.name: None}}, "app": {"hosts": {h.name: None for h in apps}}}}}))


def start_uwsgi_tcp(app, balancer) -> None:
    """A second uWSGI of the deployed release on ADDRESS:3031, reachable from the balancer only.
    The copied ini loses its unix-socket ownership lines (nothing to chown on a TCP socket)."""
    ssh(app, "nft -f -", stdin=FIREWALL.format(port=UWSGI_PORT, balancer=balancer.address).encode())
    ssh(app, f"sed -e '/^chmod-socket = /d' -e '/^chown-socket = /d' {DEPLOYED_INI} > {BENCH_INI} && " +
        _transient("bench-uwsgi-tcp", f"/usr/bin/uwsgi --ini {BENCH_INI} --socket {app.address}:{UWSGI_PORT}",
                   "KillSignal=SIGTERM", f"EnvironmentFile={DEPLOYED_INI[:-4]}.env"))


def uwsgi_site(deployed: str, apps: list) -> str:
    """The balancer's deployed server block on port 8080, passing with uwsgi to the apps' TCP sockets.
    The maps before `server {` are the deployed site's and stay shared (nginx refuses them twice)."""
    server = deployed[deployed.index("\nserver {") + 1:]
    first, last = server.index(PROXY_FIRST), server.index(PROXY_LAST)
    start, end = server.rindex("\n", 0, first) + 1, server.index("\n", last) + 1
    listen = f"listen {PATHS['http']} "
    if listen not in server:
        raise SystemExit(f"the balancer's site has no '{listen}': bench/balancer_protocol.py needs updating")
    servers = "".join(f"    server {h.address}:{UWSGI_PORT} max_fails=1 fail_timeout=10s;  # {h.name}\n" for h in apps)
    upstream = f"upstream bench_uwsgi_tcp {{\n    least_conn;\n{servers}}}\n\n"
    return upstream + (server[:start] + UWSGI_PASS.format(app=APP) + server[end:]).replace(
        listen, f"listen {PATHS['uwsgi-tcp']} ")


def reachable(address: str, port: int) -> bool:
    """Whether this machine (a lab address that is not the balancer) can open `port`."""
    try:
        with socket.create_connection((address, port), timeout=2):
            return True
    except OSError:
        return False


def cpu_usec(names: list[str]) -> dict[str, int]:
    """CPU time each lab host's container has used so far (cgroup v2 cpu.stat, read on this machine)."""
    hosts = lab_state.load_state(INSTANCE)["hosts"]
    usage = {}
    for name in names:
        stat = next(Path(d) / "cpu.stat" for d in hosts[name]["cgroups"] if (Path(d) / "cpu.stat").exists())
        usage[name] = int(stat.read_text().split("usage_usec ")[1].split()[0])
    return usage


def in_netns(host, *argv: str) -> str:
    """`argv` in a lab host's network namespace, from this machine (no SSH)."""
    return subprocess.run(["ip", "netns", "exec", network.netns_name(INSTANCE, host.name), *argv],
                          capture_output=True, text=True, check=True).stdout


def time_wait(balancer, apps: list) -> dict[str, int]:
    """TCP connections in TIME-WAIT on each tier: the side that closes first keeps each one 60 s, and
    on a balancer each would hold a local port (about 28,000 of them per app host address)."""
    count = lambda host: len(in_netns(host, "ss", "-Htan", "state", "time-wait").splitlines())  # noqa: E731
    return {"balancer": count(balancer), "apps": sum(map(count, apps))}


def measure(url: str, connections: int, seconds: int, script: Path, balancer, apps: list) -> dict:
    """One wrk slice, with the CPU the balancer and the app hosts spent per successful request and the
    connections in TIME-WAIT at its end."""
    names = [balancer.name, *(h.name for h in apps)]
    before = cpu_usec(names)
    figures = wrk(url, connections, seconds, script)
    used = {n: v - before[n] for n, v in cpu_usec(names).items()}
    ok = max(1, round(figures["ok_rps"] * figures["seconds"]))
    return {**figures, "cpu_us_per_ok": {"balancer": round(used[balancer.name] / ok),
                                          "apps": round(sum(used[h.name] for h in apps) / ok)},
            "time_wait": time_wait(balancer, apps), "load_1min": round(os.getloadavg()[0], 1)}


def summarize(slices: list[dict]) -> dict:
    """Per path, endpoint and concurrency: medians over the rounds, errors summed."""
    table: dict = {}
    for path in PATHS:
        for endpoint in ENDPOINTS:
            for c in CONCURRENCY:
                mine = [s for s in slices if (s["path"], s["endpoint"], s["c"]) == (path, endpoint, c)]
                med = lambda key: round(statistics.median(s[key] for s in mine), 2)  # noqa: E731
                table.setdefault(path, {}).setdefault(endpoint, {})[str(c)] = {
                    "ok_rps": round(statistics.median(s["ok_rps"] for s in mine)),
                    "p50_ms": med("p50_ms"), "p99_ms": med("p99_ms"),
                    "errors": sum(s[k] for s in mine for k in ERROR_KINDS),
                    "cpu_us_per_ok": {tier: round(statistics.median(s["cpu_us_per_ok"][tier] for s in mine))
                                      for tier in ("balancer", "apps")},
                    "slices": len(mine)}
    return table


def ratios(table: dict) -> dict:
    """uwsgi-tcp against http within the run: req/s and p99 as uwsgi-tcp / http."""
    http, tcp = table["http"], table["uwsgi-tcp"]
    return {endpoint: {c: {"ok_rps": round(tcp[endpoint][c]["ok_rps"] / max(1, http[endpoint][c]["ok_rps"]), 2),
                           "p99": round(tcp[endpoint][c]["p99_ms"] / http[endpoint][c]["p99_ms"], 2)}
                       for c in map(str, CONCURRENCY)} for endpoint in ENDPOINTS}


def add_uwsgi_path(balancer, apps: list) -> bool:
    """The bench's uwsgi-over-TCP path beside the deployed one; whether this machine, not a balancer,
    is kept off the uWSGI port."""
    for app in apps:
        start_uwsgi_tcp(app, balancer)
    ssh(balancer, f"cat > {BENCH_SITE} && nginx -t -q && systemctl reload nginx",
        stdin=uwsgi_site(ssh(balancer, f"cat {SITE}"), apps).encode())
    return not any(reachable(app.address, UWSGI_PORT) for app in apps)


def show(figures: dict) -> None:
    print(f"{figures['round']:<9} {figures['path']:<9} {figures['endpoint']:<13} c={figures['c']:<3} "
          f"{figures['ok_rps']:>7.0f} ok/s  p50 {figures['p50_ms']} ms  p99 {figures['p99_ms']} ms  errors "
          f"{sum(figures[k] for k in ERROR_KINDS)}  cpu/ok {figures['cpu_us_per_ok']} us  "
          f"time-wait {figures['time_wait']}  load {figures['load_1min']}", flush=True)


def run(rounds: int, slice_seconds: int, sustain: int, keep: bool) -> dict:
    """Deploy the site, add the uwsgi-over-TCP path beside it, take turns slice by slice; then two long
    POST slices per path at the top concurrency (ephemeral ports would run out only over time)."""
    scripts = {"POST /predict": post_script(), "GET /healthz": Path(tempfile.mkdtemp()) / "get.lua"}
    scripts["GET /healthz"].write_text('wrk.method = "GET"\n')
    slices: list[dict] = []
    with bench_lab(1 + APP_HOSTS, INSTANCE, keep) as (hosts, inventory):
        balancer, apps = hosts[0], hosts[1:]
        write_inventory(inventory, balancer, apps)
        deploy(inventory)
        firewalled = add_uwsgi_path(balancer, apps)
        url = {(path, endpoint): f"http://{balancer.address}:{port}{endpoint.split()[1]}"
               for path, port in PATHS.items() for endpoint in ENDPOINTS}
        for (path, endpoint), where in url.items():
            wait_answering(url[path, "POST /predict"])
            wrk(where, 32, WARMUP_SECONDS, scripts[endpoint])  # warm, not counted
        started = time.time()
        for round_no in range(1, rounds + 1):
            order = list(PATHS) if round_no % 2 else list(PATHS)[::-1]
            for endpoint in ENDPOINTS:
                for c in CONCURRENCY:
                    for path in order:
                        slices.append({"path": path, "endpoint": endpoint, "round": round_no, **measure(
                            url[path, endpoint], c, slice_seconds, scripts[endpoint], balancer, apps)})
                        show(slices[-1])
        long = []
        for path in [*PATHS, *reversed(PATHS)] if sustain else ():  # A B B A: a drift in load touches both
            long.append({"path": path, "endpoint": "POST /predict", "round": "sustained", **measure(
                url[path, "POST /predict"], CONCURRENCY[-1], sustain, scripts["POST /predict"], balancer, apps)})
            show(long[-1])
        ports = in_netns(balancer, "sysctl", "-n", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_tw_reuse")
        upstream = [line.strip() for line in ssh(balancer, f"cat {UPSTREAM}").splitlines()
                    if line.strip() and not line.strip().startswith("#")]
    table = summarize(slices)
    return {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), "rounds": rounds,
            "slice_seconds": slice_seconds, "concurrency": list(CONCURRENCY), "app_hosts": APP_HOSTS,
            "cpus": os.cpu_count(), "paths": {
                "http": "balancer nginx -> HTTP/1.1, upstream keepalive -> app host nginx -> uWSGI unix socket "
                        "(provision deploy)",
                "uwsgi-tcp": f"balancer nginx -> uwsgi protocol, a new TCP connection per request -> uWSGI on "
                             f"ADDRESS:{UWSGI_PORT} (bench only)"},
            "uwsgi_port_closed_to_non_balancer": firewalled,
            "balancer_port_range_and_tw_reuse": ports.split(), "http_upstream": upstream,
            "load_1min": [min(s["load_1min"] for s in slices), max(s["load_1min"] for s in slices)],
            "table": table, "ratios": ratios(table), "sustained": long, "slices": slices}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each one slice per path, endpoint, concurrency")
    parser.add_argument("--slice", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--sustain", type=int, default=60, help="seconds of each long slice, 2 per path (0: none)")
    parser.add_argument("--keep", action="store_true", help="leave the bench lab running")
    args = parser.parse_args()
    results = run(args.rounds, args.slice, args.sustain, args.keep)
    save("balancer-protocol", results)
    for endpoint, by_c in results["ratios"].items():
        print(endpoint, "uwsgi-tcp / http:", by_c)


if __name__ == "__main__":
    main()
