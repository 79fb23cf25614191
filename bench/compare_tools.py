"""How each contender of bench/compare.py is run against a set of lab hosts, and what it costs.

Every run is one controller process (or one per host for the OpenSSH floors, started together);
`measure` returns its wall time, the controller CPU seconds (user + system, children included)
and its peak RSS. Remote channels are counted on the hosts by `Channels` (sshd's own log).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from compare_state import floor_params
from provisioner.engine import facts
from provisioner.stack import STACK

BENCH = Path(__file__).resolve().parent
CHECKOUT = BENCH.parent
VENV = Path("/var/cache/provision/bench-venv")
SSH_OPTS = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "ControlMaster=no"]


@dataclass
class Cost:
    seconds: float
    cpu: float
    max_rss_mib: float
    ok: bool
    output: str = ""


def measure(argvs: list[list[str]], inputs: list[str | None] | None = None, env: dict | None = None) -> Cost:
    """Run the processes at once; wall time until the last ends, their CPU and the largest RSS.
    RSS comes from GNU time around each process: wait4's ru_maxrss of a child forked from this
    (large) process would count this process's own pages too."""
    inputs = inputs or [None] * len(argvs)
    rss_files = [tempfile.NamedTemporaryFile(prefix="bench-rss-", delete=False).name for _ in argvs]
    started = time.perf_counter()
    procs = [subprocess.Popen(["/usr/bin/time", "-q", "-f", "%M", "-o", rss, *argv],
                              stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=CHECKOUT)
             for argv, data, rss in zip(argvs, inputs, rss_files)]
    # Every process gets its input and has its output read at the same time, each in a thread of its
    # own: fed one after another, `bash -s` on host 2 would wait for host 1's script to end (the floors
    # measured before 2026-11-27 21:40 ran their hosts' scripts in turn that way).
    with ThreadPoolExecutor(max_workers=len(procs)) as pool:
        outs = list(pool.map(_feed_and_read, procs, inputs))
    cpu, ok = 0.0, True
    for proc in procs:
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        ok = ok and proc.returncode == 0
        cpu += usage.ru_utime + usage.ru_stime
    seconds = time.perf_counter() - started
    rss = 0
    for path in rss_files:
        text = Path(path).read_text().split()
        rss = max(rss, int(text[-1]) if text and text[-1].isdigit() else 0)
        os.unlink(path)
    return Cost(seconds, cpu, rss / 1024, ok, "\n".join(outs)[-3000:])


def _feed_and_read(proc: subprocess.Popen, data: str | None) -> str:
    """Write the process its input (if any), then read its output to the end."""
    if data is not None:
        proc.stdin.write(data.encode())
        proc.stdin.close()
    return proc.stdout.read().decode(errors="replace")


class Contenders:
    """The command lines of every contender for the lab `hosts`, written once per host set."""

    def __init__(self, hosts: list, inventory: Path, known_hosts: Path, state_dir: Path, provision: Path):
        self.hosts, self.inventory, self.known_hosts, self.state_dir = hosts, inventory, known_hosts, state_dir
        self.provision_script = provision  # bench/common.py's install_provision()
        self.state = json.loads((state_dir / "state.json").read_text())
        self.floor = floor_params(self.state) + (BENCH / "floor.sh").read_text()

    def _ssh(self, host) -> list[str]:
        return ["ssh", "-q", "-i", str(host.key_file), *SSH_OPTS, "-o", f"UserKnownHostsFile={self.known_hosts}",
                f"{host.user}@{host.address}"]

    def provision(self, n: int, check: bool = False, forks: int = 0) -> Cost:
        """`provision deploy` of hosts 1..n, all at once unless `forks` says otherwise."""
        names = ",".join(h.name for h in self.hosts[:n])
        env = {**os.environ, "PROVISION_KNOWN_HOSTS": str(self.known_hosts)}
        return measure([[str(self.provision_script), "deploy", "-H", names, "-i", str(self.inventory),
                         "--forks", str(forks or max(n, 10)), *(["--check"] if check else [])]], env=env)

    def pyinfra(self, n: int) -> Cost:
        inv = self.state_dir / f"pyinfra-{n}.py"
        rows = [(h.address, {"ssh_user": h.user, "ssh_key": str(h.key_file), "ssh_known_hosts_file": str(self.known_hosts),
                             "ssh_strict_host_key_checking": "yes"}) for h in self.hosts[:n]]
        inv.write_text(f"hosts = {rows!r}\n")
        env = {**os.environ, "BENCH_STATE": str(self.state_dir / "state.json")}
        return measure([[str(VENV / "bin/pyinfra"), str(inv), str(BENCH / "pyinfra_deploy.py"), "--sudo", "-y",
                         "--parallel", str(n)]], env=env)

    def ansible(self, n: int, pipelining: bool) -> Cost:
        inv = self.state_dir / f"ansible-{n}.ini"
        h0 = self.hosts[0]
        inv.write_text("\n".join(["[all]", *(h.address for h in self.hosts[:n]), "[all:vars]",
                                  f"ansible_user={h0.user}", f"ansible_ssh_private_key_file={h0.key_file}",
                                  f"ansible_ssh_common_args=-o UserKnownHostsFile={self.known_hosts} "
                                  "-o StrictHostKeyChecking=yes", "ansible_python_interpreter=/usr/bin/python3"]) + "\n")
        env = {**os.environ, "ANSIBLE_PIPELINING": str(pipelining), "ANSIBLE_FORKS": str(n),
               "PATH": f"{VENV / 'bin'}:{os.environ['PATH']}"}
        return measure([["ansible-playbook", "-i", str(inv), str(BENCH / "playbook.yml"),
                         "-e", f"@{self.state_dir / 'state.json'}"]], env=env)

    def floor_check(self, n: int) -> Cost:
        """bench/floor.sh over one OpenSSH session per host, all hosts at once."""
        hosts = self.hosts[:n]
        return measure([[*self._ssh(h), "sudo", "-n", "bash", "-s"] for h in hosts], [self.floor] * len(hosts))

    def probe_floor(self, n: int) -> Cost:
        """OpenSSH running provision's exact probe script (facts + health check) per host, all at once."""
        hosts = self.hosts[:n]
        scripts = [facts.probe_script(STACK.declare(h.vars)[0], health=STACK.health(h.vars, tries=1)) for h in hosts]
        cost = measure([[*self._ssh(h), "sudo", "-n", "sh"] for h in hosts], scripts)
        cost.ok = cost.ok and cost.output.count("@@provision health") >= 1
        return cost

    def cold_floor(self, n: int, script: str) -> Cost:
        hosts = self.hosts[:n]
        return measure([[*self._ssh(h), "sudo", "-n", "bash", "-s"] for h in hosts], [script] * len(hosts))

    def run(self, tool: str, n: int, cold_script: str = "") -> Cost:
        if tool.startswith("provision-forks"):
            return self.provision(n, forks=int(tool.removeprefix("provision-forks")))
        return {"provision": lambda: self.provision(n), "pyinfra": lambda: self.pyinfra(n),
                "ansible": lambda: self.ansible(n, False), "ansible-pipelining": lambda: self.ansible(n, True),
                "floor": lambda: self.floor_check(n) if not cold_script else self.cold_floor(n, cold_script),
                "probe-floor": lambda: self.probe_floor(n)}[tool]()


class Channels:
    """SSH sessions and channels one host's sshd opened during a run, from its own log (LogLevel
    DEBUG1 on that host only): independent of MaxSessions and of the client's multiplexing."""

    def __init__(self, host, known_hosts: Path):
        self.ssh = ["ssh", "-q", "-i", str(host.key_file), *SSH_OPTS, "-o", f"UserKnownHostsFile={known_hosts}",
                    f"{host.user}@{host.address}", "sudo", "-n", "sh", "-s"]
        subprocess.run(self.ssh, input="printf 'LogLevel DEBUG1\\n' > /etc/ssh/sshd_config.d/bench-debug.conf\n"
                       "systemctl reload ssh\n", text=True, check=True, capture_output=True)

    def _counts(self) -> tuple[int, int, int]:
        """Totals so far; retried, since sshd refuses connections for a moment while it reloads."""
        # -t sshd, not -u ssh: pam_systemd moves each session's sshd into the user's session scope
        script = ("journalctl -q -t sshd -o cat --no-pager | awk '/Accepted publickey/ {a++} "
                  "/server_input_channel_open: ctype session/ {c++} /subsystem request for sftp/ {s++} "
                  "END {print a+0, c+0, s+0}'\n")
        for attempt in range(20):
            run = subprocess.run(self.ssh, input=script, text=True, capture_output=True)
            if run.returncode == 0:
                a, c, s = run.stdout.split()
                return int(a), int(c), int(s)
            time.sleep(0.5)
        raise SystemExit(f"cannot read sshd's log on the first host: {run.stderr}")

    def start(self) -> None:
        self.before = self._counts()

    def stop(self) -> dict:
        """Counts since start(), less the reading connection's own (one connection, one channel)."""
        after = self._counts()
        conns, chans, sftp = (a - b for a, b in zip(after, self.before))
        return {"connections": conns - 1, "channels": chans - 1, "sftp": sftp}
