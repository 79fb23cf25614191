"""The Vagrant VM lab: bare Debian 12 VMs (vagrant-libvirt) inside a network namespace.

`up` builds (once per recipe) and adds the locally built box, creates network namespace NETNS with
a veth to the controller, starts an apt-cacher-ng instance on the controller end of that veth (the
VMs' only way out: no default route exists in the namespace), starts virtlogd + libvirtd *inside*
the namespace (so the VM bridge and every VM address exist only there), runs `vagrant up` inside it
and writes `inventories/vagrant.yml` from `vagrant ssh-config`. Anything that talks to the VMs runs
inside the namespace too: prefix commands with `netns_prefix()`.

`down` undoes all of it (domains, volumes, pool, networks, daemons we started, namespace, veth),
works after a crashed run, and is idempotent. Processes are stopped by recorded PID only.

On another machine (real KVM or VirtualBox) users can also run `vagrant up` in vagrant/ by hand
and then `provision vm inventory` (see vagrant/README.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable

import typer
import yaml

from provisioner import PROJECT_ROOT
from provisioner.errors import EXIT_FAILED, UserError
from provisioner.lab import aptproxy
from provisioner.lab.common import write_atomic

# --- names and addresses -------------------------------------------------------------------------
NETNS = "provision-vm"
STATE_DIR = Path("/var/lib/provision-vm")
STATE_FILE = STATE_DIR / "state.json"
LOCK_FILE = Path("/run/lock/provision-vm.lock")
CACHE_ROOT = Path("/var/cache/provision")
BOX_CACHE = CACHE_ROOT / "box"
VAGRANT_HOME = CACHE_ROOT / "vagrant-home"
HOSTKEY_DIR = CACHE_ROOT / "vm-hostkeys"          # stable SSH host keys per machine name
APT_CACHE_DIR = CACHE_ROOT / "vm-apt-cacher-ng"   # our own apt-cacher-ng instance's cache
VAGRANT_DIR = PROJECT_ROOT / "vagrant"
BUILD_BOX = VAGRANT_DIR / "build-box.sh"
INVENTORY = PROJECT_ROOT / "inventories" / "vagrant.yml"
LOG_DIR = Path("/var/log/provision-vm")            # vagrant-up.log, console/NAME.log (kept after down)

BOX_NAME = "provision/debian12"
DEFAULT_NAMES = ("vm1", "vm2")
GROUP = "vagrant"
DOMAIN_PREFIX = "provision-"          # libvirt domain = provision-vm1 (Vagrantfile default_prefix)
POOL = "provision-vm"                 # libvirt storage pool we define (and undefine)
POOL_DIR = STATE_DIR / "images"
NETWORK = "provision-vm"              # libvirt management network we define (and undefine)
BRIDGE = "pvmbr0"
MGMT_SUBNET = ipaddress.ip_network("192.168.121.0/24")   # exists only inside NETNS
MAC_PREFIX = "52:54:00:70:76:"        # vmN (N-th name) gets MAC_PREFIX%02x and MGMT .10+N
VETH_HOST, VETH_LAB = "pvm-host", "pvm-lab"
APT_PROXY_ADDR = "10.198.213.1"       # controller end of the veth; baked into the box (build-box.sh)
LAB_VETH_ADDR = "10.198.213.2"
VETH_PREFIX = 30
APT_PROXY_PORT = 3152
LIBVIRT_URI = "qemu:///system"
LIBVIRT_SOCK = Path("/run/libvirt/libvirt-sock")

# apt packages the lab needs on the controller (checked by `up`).
APT_PACKAGES = (
    "vagrant", "vagrant-libvirt", "libvirt-daemon-system", "libvirt-clients", "qemu-system-x86",
    "qemu-utils", "dnsmasq-base", "iptables", "mmdebstrap", "extlinux", "fdisk", "apt-cacher-ng",
    "iproute2", "openssh-client",
)

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(f"vm: {msg}", file=sys.stderr, flush=True)


def netns_prefix() -> list[str]:
    """argv prefix that runs a command inside the lab's network namespace."""
    return ["ip", "netns", "exec", NETNS]


# --- small helpers -------------------------------------------------------------------------------
def _oneline(text: str, limit: int = 800) -> str:
    """Command output as one line (UserError causes are one line)."""
    return " ".join(text.split())[-limit:]


def _run(cmd: list[str], *, check: bool = True, input: str | None = None, timeout: float | None = None,
         env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout, env=env,
                       cwd=cwd)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {(p.stderr or p.stdout).strip()[-1500:]}")
    return p


def _ns(cmd: list[str]) -> list[str]:
    return netns_prefix() + cmd


def _virsh(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    return _run(["virsh", "-q", "-c", LIBVIRT_URI, *args], check=check, timeout=timeout)


def _pid_alive(pid: int | None, exe_name: str) -> bool:
    """True if `pid` runs (not a zombie) and its executable's name is `exe_name`."""
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
            return False
        exe = os.path.basename(os.readlink(f"/proc/{pid}/exe")).removesuffix(" (deleted)")
        return exe == exe_name
    except (FileNotFoundError, ProcessLookupError, IndexError, PermissionError):
        return False


def _stop_pid(pid: int | None, exe_name: str, timeout: float = 10.0) -> None:
    """SIGTERM, wait, SIGKILL: only if `pid` is still the `exe_name` we started."""
    if not _pid_alive(pid, exe_name):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid, exe_name):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _pid_alive(pid, exe_name):
        time.sleep(0.05)


def _read_pidfile(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def _load_state() -> dict:
    try:
        return json.loads(STATE_FILE.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _save_state(st: dict) -> None:
    write_atomic(STATE_FILE, json.dumps(st, indent=1, sort_keys=True) + "\n", 0o600)


@contextlib.contextmanager
def _lock():
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK_FILE, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError("another `provision vm` command is running (lock held on "
                            f"{LOCK_FILE})", "wait for it to finish") from None
        yield


def _netns_exists() -> bool:
    return Path(f"/run/netns/{NETNS}").exists()


def _link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def machine_names() -> list[str]:
    return os.environ.get("PROVISION_VM_NAMES", " ".join(DEFAULT_NAMES)).split()


def machine_address(index: int) -> str:
    """The DHCP-reserved address of the index-th machine (0-based) inside the namespace."""
    return str(MGMT_SUBNET.network_address + 11 + index)


# --- prerequisites -------------------------------------------------------------------------------
def missing_packages(packages: Iterable[str] = APT_PACKAGES) -> list[str]:
    packages = list(packages)
    p = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n", *packages],
                       capture_output=True, text=True)
    installed = {ln.split()[0].split(":")[0] for ln in p.stdout.splitlines()
                 if ln.strip().endswith(" installed")}
    return [pkg for pkg in packages if pkg not in installed]


def check_prerequisites() -> None:
    if not sys.platform.startswith("linux"):
        raise UserError(f"the VM lab needs Linux (libvirt in a network namespace); this is {sys.platform}",
                        "use Vagrant directly (vagrant/README.md), then `provision vm inventory`")
    if os.geteuid() != 0:
        raise UserError("the VM lab needs root: it creates a network namespace and runs libvirtd",
                        "run it as root, e.g. `sudo provision vm up`")
    if not shutil.which("dpkg-query"):
        raise UserError("the VM lab's setup is made for Debian/Ubuntu (apt packages)",
                        "use Vagrant directly (vagrant/README.md), then `provision vm inventory`")
    missing = missing_packages()
    if missing:
        raise UserError(f"missing apt packages: {' '.join(missing)}",
                        f"apt-get install -y {' '.join(missing)}")


def kvm_usable() -> bool:
    """Real hardware virtualization: /dev/kvm plus vmx/svm, and not a nested 'PVM' /dev/kvm."""
    if not Path("/dev/kvm").exists() or Path("/sys/module/kvm_pvm").exists():
        return False
    try:
        return bool(re.search(r"^flags\s*:.*\b(vmx|svm)\b", Path("/proc/cpuinfo").read_text(), re.M))
    except OSError:
        return False


def vm_driver() -> str:
    d = os.environ.get("PROVISION_VM_DRIVER", "auto")
    if d in ("", "auto"):
        return "kvm" if kvm_usable() else "qemu"
    if d not in ("kvm", "qemu"):
        raise UserError(f"PROVISION_VM_DRIVER must be kvm, qemu or auto, not {d!r}",
                        "unset it (auto) or set it to qemu")
    return d


def _fix_dev_kvm() -> None:
    # Without this libvirtd re-probes qemu on every call (~20 s each).
    if Path("/dev/kvm").exists():
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            _run(["chgrp", "kvm", "/dev/kvm"])
            os.chmod("/dev/kvm", 0o660)


# --- box -----------------------------------------------------------------------------------------
def box_recipe() -> str:
    return hashlib.sha256(BUILD_BOX.read_bytes()).hexdigest()[:12]


def box_version() -> str:
    return f"12.{int(box_recipe()[:8], 16)}"


def box_path() -> Path:
    return BOX_CACHE / f"provision-debian12-{box_recipe()}.box"


def build_box(force: bool = False, log: Log = _stderr) -> Path:
    """Build the box unless the cached one matches the recipe (build-box.sh's content)."""
    box = box_path()
    if box.exists() and box.with_suffix(".json").exists() and not force:
        return box
    log(f"building the Debian 12 box (~1 min): {box}")
    t0 = time.monotonic()
    p = subprocess.run(["bash", str(BUILD_BOX), *(["--force"] if force else [])], capture_output=True,
                       text=True)
    if p.returncode != 0:
        raise UserError(f"building the VM box failed: {_oneline(p.stderr or p.stdout)}",
                        f"run `bash {BUILD_BOX}` to see the whole output", EXIT_FAILED)
    log(f"box built in {time.monotonic() - t0:.0f} s")
    return box


def _vagrant_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env.update({
        "VAGRANT_HOME": str(VAGRANT_HOME),
        "VAGRANT_DOTFILE_PATH": str(STATE_DIR / "dotvagrant"),
        "VAGRANT_CWD": str(VAGRANT_DIR),
        "VAGRANT_DEFAULT_PROVIDER": "libvirt",
        "VAGRANT_CHECKPOINT_DISABLE": "1",
        "VAGRANT_BOX_UPDATE_CHECK_DISABLE": "1",
        "VAGRANT_NO_COLOR": "1",
        "LIBVIRT_DEFAULT_URI": LIBVIRT_URI,
        "PROVISION_VM_DRIVER": vm_driver(),
        "PROVISION_VM_POOL": POOL,
        "PROVISION_VM_NETWORK": NETWORK,
        "PROVISION_VM_MAC_PREFIX": MAC_PREFIX,
        "PROVISION_VM_CONSOLE_DIR": str(LOG_DIR / "console"),
        "PROVISION_VM_NAMES": " ".join(machine_names()),
    })
    env.pop("PROVISION_VM_BOX", None)   # the lab always uses the locally built box
    env.update(extra or {})
    return env


def ensure_box(log: Log = _stderr) -> None:
    """`vagrant box add` the built box, only when this recipe's version is not there yet."""
    version = box_version()
    box_dir = VAGRANT_HOME / "boxes" / BOX_NAME.replace("/", "-VAGRANTSLASH-")
    if (box_dir / version / "libvirt" / "box.img").exists():
        return
    build_box(log=log)
    log(f"adding box {BOX_NAME} {version}")
    env = _vagrant_env()
    if box_dir.exists():  # older recipes: remove them (their libvirt volumes die with our pool)
        _run(["vagrant", "box", "remove", BOX_NAME, "--all", "--force"], check=False, env=env)
        shutil.rmtree(box_dir, ignore_errors=True)
    p = _run(["vagrant", "box", "add", "--force", str(box_path().with_suffix(".json"))], check=False,
             env=env, timeout=600)
    if p.returncode != 0:
        raise UserError(f"vagrant box add failed: {_oneline(p.stderr or p.stdout)}",
                        f"check {VAGRANT_HOME} (VAGRANT_HOME) and the box {box_path()}", EXIT_FAILED)


# --- apt proxy (our own apt-cacher-ng instance on the controller end of the veth) ----------------


def _start_aptproxy(st: dict, log: Log) -> None:
    if _pid_alive(st.get("aptproxy_pid"), "apt-cacher-ng"):
        return
    conf = STATE_DIR / "acng"
    aptproxy.write_config(conf, APT_CACHE_DIR, STATE_DIR / "acng-log", STATE_DIR / "acng.socket", APT_PROXY_PORT)
    with open(STATE_DIR / "acng.out", "ab") as out:
        proc = subprocess.Popen(["apt-cacher-ng", "-c", str(conf), "ForeGround=1", f"BindAddress={APT_PROXY_ADDR}"],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
    st["aptproxy_pid"] = proc.pid
    _save_state(st)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (STATE_DIR / "acng.out").read_text(errors="replace")[-600:]
            raise RuntimeError(f"apt-cacher-ng exited with {proc.returncode}: {tail}")
        with contextlib.suppress(OSError):
            with socket.create_connection((APT_PROXY_ADDR, APT_PROXY_PORT), timeout=0.5):
                log(f"apt proxy on {APT_PROXY_ADDR}:{APT_PROXY_PORT} (pid {proc.pid})")
                return
        time.sleep(0.05)
    raise RuntimeError("apt-cacher-ng did not listen within 10 s")


# --- namespace and daemons -----------------------------------------------------------------------
def _create_netns() -> None:
    net = ipaddress.ip_network(f"{APT_PROXY_ADDR}/{VETH_PREFIX}", strict=False)
    routes = _run(["ip", "-4", "-j", "route", "show"]).stdout
    for r in json.loads(routes or "[]"):
        dst = r.get("dst", "")
        if dst not in ("default", "") and r.get("dev") != VETH_HOST:
            with contextlib.suppress(ValueError):
                if ipaddress.ip_network(dst if "/" in dst else dst + "/32", strict=False).overlaps(net):
                    raise UserError(f"the VM lab's veth subnet {net} overlaps route {dst} dev {r.get('dev')}",
                                    "remove that route/interface, or run `provision vm down` if it is ours")
    _run(["ip", "netns", "add", NETNS])
    cmds = [
        ["ip", "link", "add", VETH_HOST, "type", "veth", "peer", "name", VETH_LAB, "netns", NETNS],
        ["ip", "addr", "add", f"{APT_PROXY_ADDR}/{VETH_PREFIX}", "dev", VETH_HOST],
        ["ip", "link", "set", VETH_HOST, "up"],
        _ns(["ip", "link", "set", "lo", "up"]),
        _ns(["ip", "addr", "add", f"{LAB_VETH_ADDR}/{VETH_PREFIX}", "dev", VETH_LAB]),
        _ns(["ip", "link", "set", VETH_LAB, "up"]),
    ]
    for c in cmds:
        _run(c)
    # IPv6 off on the veth: nothing but the apt proxy's IPv4 address is reachable.
    for c in (["sysctl", "-qw", f"net.ipv6.conf.{VETH_HOST}.disable_ipv6=1"],
              _ns(["sysctl", "-qw", f"net.ipv6.conf.{VETH_LAB}.disable_ipv6=1"])):
        _run(c, check=False)


def _libvirt_answers() -> bool:
    return _virsh("uri", check=False, timeout=20).returncode == 0


def _start_daemons(st: dict, log: Log) -> None:
    if _pid_alive(st.get("libvirtd_pid"), "libvirtd") and _libvirt_answers():
        return
    if LIBVIRT_SOCK.exists() and _libvirt_answers():
        raise UserError("a libvirtd that the VM lab did not start is running on this machine",
                        "stop it first (the lab runs its own libvirtd inside network namespace "
                        f"{NETNS}), or use Vagrant directly: vagrant/README.md")
    _fix_dev_kvm()
    if not Path("/run/libvirt").exists():
        st["created_run_libvirt"] = True
    for exe, key in (("virtlogd", "virtlogd_pid"), ("libvirtd", "libvirtd_pid")):
        pidfile = STATE_DIR / f"{exe}.pid"
        if _pid_alive(st.get(key), exe):
            continue
        with contextlib.suppress(FileNotFoundError):
            pidfile.unlink()
        _run(_ns([exe, "-d", "-p", str(pidfile)]), timeout=60)
        deadline = time.monotonic() + 10
        while (pid := _read_pidfile(pidfile)) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if not _pid_alive(pid, exe):
            raise RuntimeError(f"{exe} did not start (pid file {pidfile})")
        st[key] = pid
        _save_state(st)
    deadline = time.monotonic() + 60
    while not _libvirt_answers():
        if time.monotonic() > deadline:
            raise RuntimeError("libvirtd did not answer within 60 s")
        time.sleep(0.2)
    log(f"libvirtd (pid {st['libvirtd_pid']}) and virtlogd (pid {st['virtlogd_pid']}) in netns {NETNS}")


def _network_xml(names: list[str]) -> str:
    gw = MGMT_SUBNET.network_address + 1
    hosts = "\n".join(
        f"      <host mac='{MAC_PREFIX}{i + 1:02x}' name='{n}' ip='{machine_address(i)}'/>"
        for i, n in enumerate(names))
    return f"""<network>
  <name>{NETWORK}</name>
  <forward mode='nat'/>
  <bridge name='{BRIDGE}' stp='off' delay='0'/>
  <ip address='{gw}' netmask='{MGMT_SUBNET.netmask}'>
    <dhcp>
      <range start='{MGMT_SUBNET.network_address + 100}' end='{MGMT_SUBNET.network_address + 254}'/>
{hosts}
    </dhcp>
  </ip>
</network>
"""


def _define_libvirt_objects(names: list[str]) -> None:
    if _virsh("pool-info", POOL, check=False).returncode != 0:
        POOL_DIR.mkdir(parents=True, exist_ok=True)
        _virsh("pool-define-as", POOL, "dir", "--target", str(POOL_DIR))
    if "running" not in _virsh("pool-info", POOL).stdout.split("State:")[-1].split("\n")[0]:
        _virsh("pool-start", POOL)
    if _virsh("net-info", NETWORK, check=False).returncode != 0:
        xml = STATE_DIR / "network.xml"
        write_atomic(xml, _network_xml(names))
        _virsh("net-define", str(xml))
    if "Active:         yes" not in _virsh("net-info", NETWORK).stdout:
        _virsh("net-start", NETWORK)


# --- inventory -----------------------------------------------------------------------------------
def parse_ssh_config(text: str) -> dict[str, dict]:
    """`vagrant ssh-config` output -> {host: {hostname, user, port, identityfile: [..], ...}}."""
    hosts: dict[str, dict] = {}
    cur: dict | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"(\S+)\s*(?:=\s*|\s+)(.*)$", line)
        if not m:
            continue
        key, value = m.group(1).lower(), m.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if key == "host":
            cur = hosts.setdefault(value, {"identityfile": []})
        elif cur is not None:
            if key == "identityfile":
                cur["identityfile"].append(value)
            else:
                cur.setdefault(key, value)
    return hosts


def render_inventory(hosts: dict[str, dict], group: str = GROUP) -> str:
    """Ansible-format YAML inventory: every host in `group`, with connection variables."""
    out: dict[str, dict] = {}
    for name, h in hosts.items():
        if not h.get("hostname"):
            continue
        entry: dict = {"ansible_host": h["hostname"], "ansible_port": int(h.get("port", 22))}
        if h.get("user"):
            entry["ansible_user"] = h["user"]
        if h.get("identityfile"):
            entry["ansible_ssh_private_key_file"] = os.path.expanduser(h["identityfile"][0])
        out[name] = entry
    if not out:
        raise UserError("`vagrant ssh-config` listed no reachable machine",
                        "bring the VMs up first: `provision vm up` (or `vagrant up` in vagrant/)")
    doc = {"all": {"children": {group: {"hosts": out}}}}
    header = ("# Generated from `vagrant ssh-config` by `provision vm inventory`: do not edit, regenerate.\n"
              "# Deploy: provision deploy --host vagrant -i inventories/vagrant.yml\n")
    return header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


def lab_is_up() -> bool:
    st = _load_state()
    return bool(st.get("up")) and _netns_exists() and _pid_alive(st.get("libvirtd_pid"), "libvirtd")


def ssh_config_text(lab: bool | None = None) -> str:
    """Run `vagrant ssh-config` (inside the lab namespace with the lab's env, or plainly)."""
    if not shutil.which("vagrant"):
        raise UserError("vagrant is not installed", "apt-get install -y vagrant vagrant-libvirt")
    if lab is None:
        lab = lab_is_up()
    if lab:
        cmd, env, cwd = _ns(["vagrant", "ssh-config"]), _vagrant_env(), VAGRANT_DIR
    else:
        cmd, env, cwd = ["vagrant", "ssh-config"], None, (
            Path(os.environ["VAGRANT_CWD"]) if os.environ.get("VAGRANT_CWD") else VAGRANT_DIR)
    p = _run(cmd, check=False, env=env, cwd=cwd, timeout=300)
    if "Host " not in p.stdout:
        raise UserError(f"`vagrant ssh-config` failed: {_oneline(p.stderr or p.stdout)}",
                        "bring the VMs up first: `provision vm up` (or `vagrant up` in vagrant/)")
    return p.stdout


def write_inventory(path: Path = INVENTORY, lab: bool | None = None, log: Log = _stderr) -> Path:
    text = render_inventory(parse_ssh_config(ssh_config_text(lab)))
    write_atomic(Path(path), text)
    log(f"inventory written: {path}")
    return Path(path)


def load_inventory_hosts(path: Path = INVENTORY) -> dict[str, dict]:
    doc = yaml.safe_load(Path(path).read_text())
    return doc["all"]["children"][GROUP]["hosts"]


# --- ssh into the VMs (from inside the namespace) ------------------------------------------------
def ssh_argv(host: dict, command: str | None = None, known_hosts: Path | None = None) -> list[str]:
    """ssh argv (with the netns prefix) for an inventory host entry."""
    kh = known_hosts or (STATE_DIR / "known_hosts")
    argv = _ns(["ssh", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                "-o", f"UserKnownHostsFile={kh}", "-o", "StrictHostKeyChecking=yes",
                "-o", "ConnectTimeout=20", "-i", host["ansible_ssh_private_key_file"],
                "-p", str(host.get("ansible_port", 22)),
                f"{host.get('ansible_user', 'vagrant')}@{host['ansible_host']}"])
    if command is not None:
        argv.append(command)
    return argv


def _hostkeys(name: str) -> dict[str, Path]:
    d = HOSTKEY_DIR / name
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    keys = {}
    for kind in ("ed25519", "ecdsa"):
        key = d / f"ssh_host_{kind}_key"
        if not key.exists():
            _run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", f"root@{name}", "-f", str(key)])
        keys[kind] = key
    return keys


def _install_hostkeys(hosts: dict[str, dict]) -> None:
    """Give each VM its stable per-name host keys (so known_hosts stays valid across `vm up`)."""
    lines = []
    for name, h in hosts.items():
        for kind, key in _hostkeys(name).items():
            pub = key.with_suffix(".pub").read_text().split()
            lines.append(f"{h['ansible_host']} {pub[0]} {pub[1]}")
    write_atomic(STATE_DIR / "known_hosts", "\n".join(lines) + "\n")

    def push(item):
        name, h = item
        script = ["set -e", "umask 077"]
        for kind, key in _hostkeys(name).items():
            for path, mode in ((key, "600"), (key.with_suffix(".pub"), "644")):
                dest = f"/etc/ssh/{path.name}"
                script += [f"cat > {dest} <<'KEY'", path.read_text().rstrip("\n"), "KEY",
                           f"chmod {mode} {dest}"]
        script.append("systemctl reload ssh")
        argv = ssh_argv(h, "sudo sh -s")
        # this first contact accepts whatever key the VM has now; afterwards only ours
        argv[argv.index("StrictHostKeyChecking=yes")] = "StrictHostKeyChecking=no"
        argv[argv.index(f"UserKnownHostsFile={STATE_DIR / 'known_hosts'}")] = "UserKnownHostsFile=/dev/null"
        p = _run(argv, check=False, input="\n".join(script) + "\n", timeout=120)
        if p.returncode != 0:
            raise RuntimeError(f"installing host keys on {name} failed: {p.stderr.strip()[-500:]}")
        # sshd re-executes itself on reload (refusing connections meanwhile): wait until it
        # answers again, with the pinned key (StrictHostKeyChecking=yes, the lab's known_hosts).
        deadline = time.monotonic() + 90
        while True:
            p = _run(ssh_argv(h, "true"), check=False, timeout=60)
            if p.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name}: no SSH with its new host key: {p.stderr.strip()[-500:]}")
            time.sleep(0.5)

    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as ex:
        list(ex.map(push, hosts.items()))


# --- up / down / status --------------------------------------------------------------------------
def _leftovers() -> list[str]:
    """What a previous (maybe crashed) run left behind."""
    found = []
    if STATE_FILE.exists():
        found.append(str(STATE_FILE))
    if _netns_exists():
        found.append(f"netns {NETNS}")
    if _link_exists(VETH_HOST):
        found.append(f"link {VETH_HOST}")
    found += [str(p) for p in _libvirt_config_files()]
    if POOL_DIR.exists() and any(POOL_DIR.iterdir()):
        found.append(str(POOL_DIR))
    return found


def _libvirt_config_files() -> list[Path]:
    etc = Path("/etc/libvirt")
    return [*sorted((etc / "qemu").glob(f"{DOMAIN_PREFIX}*.xml")),
            *[p for p in (etc / "storage" / f"{POOL}.xml", etc / "qemu" / "networks" / f"{NETWORK}.xml")
              if p.exists()]]


def up(names: list[str] | None = None, *, quiet: bool = False, log: Log = _stderr) -> dict:
    """Bring the VM lab up; returns {"inventory", "hosts", "timings"}. Idempotent."""
    check_prerequisites()
    if names:
        os.environ["PROVISION_VM_NAMES"] = " ".join(names)
    names = machine_names()
    for n in names:
        if not re.fullmatch(r"[a-z][a-z0-9-]{0,30}", n):
            raise UserError(f"bad VM name {n!r}", "use lowercase letters, digits and '-', e.g. vm1")
    timings: dict[str, float] = {}
    with _lock():
        st = _load_state()
        healthy = st.get("up") and _netns_exists() and _pid_alive(st.get("libvirtd_pid"), "libvirtd")
        if not healthy and _leftovers():
            log("cleaning up what an earlier run left behind")
            _down_locked(log)
            st = {}
        t = time.monotonic()
        ensure_box(log)
        timings["box"] = time.monotonic() - t
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        os.chmod(STATE_DIR, 0o755)   # libvirt-qemu reads the pool's images below it
        (LOG_DIR / "console").mkdir(parents=True, exist_ok=True)
        for old in (LOG_DIR / "console").glob("*.log"):
            old.unlink()
        st.setdefault("names", names)
        _save_state(st)
        if not _netns_exists():
            _create_netns()
        _start_aptproxy(st, log)
        _start_daemons(st, log)
        _define_libvirt_objects(names)
        st["up"] = True
        _save_state(st)
        log(f"vagrant up {' '.join(names)} (driver {vm_driver()})")
        t = time.monotonic()
        out_path = LOG_DIR / "vagrant-up.log"
        with open(out_path, "w") as out:
            p = subprocess.run(_ns(["vagrant", "up", "--provider=libvirt"]), env=_vagrant_env(),
                               cwd=VAGRANT_DIR, stdin=subprocess.DEVNULL,
                               stdout=out if quiet else None, stderr=subprocess.STDOUT if quiet else None)
        timings["vagrant_up"] = time.monotonic() - t
        if p.returncode != 0:
            raise UserError(f"vagrant up failed (exit {p.returncode}): {_vagrant_error(out_path) if quiet else ''}",
                            f"see {out_path} and the VMs' consoles {LOG_DIR}/console/*.log; "
                            "`provision vm down` cleans up", EXIT_FAILED)
        t = time.monotonic()
        write_inventory(INVENTORY, lab=True, log=log)
        hosts = load_inventory_hosts(INVENTORY)
        _install_hostkeys(hosts)
        timings["inventory"] = time.monotonic() - t
        st["timings"] = timings
        _save_state(st)
        log("up: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
        return {"inventory": INVENTORY, "hosts": hosts, "timings": timings}


def _vagrant_error(log_path: Path) -> str:
    """The message of a failed vagrant run, without Ruby backtraces and progress bars."""
    lines = [ln for ln in log_path.read_text(errors="replace").replace("\r", "\n").splitlines()
             if ln.strip() and not re.match(r"\s*/\S+\.rb:\d+:in", ln) and "Progress:" not in ln]
    return " | ".join(lines[-12:])[-1500:]


def down(log: Log = _stderr) -> None:
    """Destroy everything `up` made. Idempotent; also cleans up after a crashed run."""
    if os.geteuid() != 0:
        raise UserError("the VM lab needs root", "run it as root, e.g. `sudo provision vm down`")
    with _lock():
        _down_locked(log)


def _down_locked(log: Log) -> None:
    t0 = time.monotonic()
    st = _load_state()
    ours = _pid_alive(st.get("libvirtd_pid"), "libvirtd")
    if not ours and _libvirt_config_files():
        # A crashed run left libvirt objects: a libvirtd (ours, in the namespace) removes them.
        if not (LIBVIRT_SOCK.exists() and _libvirt_answers()):
            STATE_DIR.mkdir(parents=True, exist_ok=True)
            if not _netns_exists():
                _run(["ip", "netns", "add", NETNS])
            with contextlib.suppress(Exception):
                _start_daemons(st, log)
            ours = _pid_alive(st.get("libvirtd_pid"), "libvirtd")
    if ours:
        # Hard power-off first: `vagrant destroy` then has nothing to wait for.
        for d in _virsh("list", "--name", check=False).stdout.split():
            if d.startswith(DOMAIN_PREFIX):
                _virsh("destroy", d, check=False)
        dot = STATE_DIR / "dotvagrant"
        if dot.exists() and shutil.which("vagrant"):
            p = _run(_ns(["vagrant", "destroy", "-f"]), check=False, env=_vagrant_env(), cwd=VAGRANT_DIR,
                     timeout=300)
            if p.returncode != 0:
                log(f"vagrant destroy: {(p.stderr or p.stdout).strip()[-300:]} (removing with virsh)")
        _virsh_cleanup(log)
    # Daemons we started, by PID.
    _stop_pid(st.get("libvirtd_pid"), "libvirtd", timeout=15)
    _stop_pid(st.get("virtlogd_pid"), "virtlogd", timeout=10)
    _stop_pid(st.get("aptproxy_pid"), "apt-cacher-ng", timeout=5)
    # Anything else still inside our namespace (dnsmasq, qemu of a crashed run) was started by us.
    if _netns_exists():
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = [int(x) for x in _run(["ip", "netns", "pids", NETNS], check=False).stdout.split()]
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + 5
            while pids and time.monotonic() < deadline:
                pids = [p for p in pids if Path(f"/proc/{p}").exists() and not _zombie(p)]
                time.sleep(0.05)
            if not pids:
                break
        _run(["ip", "netns", "del", NETNS], check=False)
    if _link_exists(VETH_HOST):
        _run(["ip", "link", "del", VETH_HOST], check=False)
    for f in _libvirt_config_files():   # only if libvirtd could not remove them
        f.unlink(missing_ok=True)
        log(f"removed stale {f}")
    # Runtime files libvirt leaves behind for our network/domains (dnsmasq's pid file, qemu logs).
    for p in (Path("/var/lib/libvirt/dnsmasq") / f"{NETWORK}.conf",
              Path("/var/lib/libvirt/dnsmasq") / f"{BRIDGE}.status",
              Path("/var/lib/libvirt/dnsmasq") / f"{NETWORK}.hostsfile",
              Path("/run/libvirt/network") / f"{NETWORK}.pid",
              *Path("/var/log/libvirt/qemu").glob(f"{DOMAIN_PREFIX}*.log")):
        p.unlink(missing_ok=True)
    shutil.rmtree(Path("/run/libvirt/network") / NETWORK, ignore_errors=True)
    if st.get("created_run_libvirt") and not (LIBVIRT_SOCK.exists() and _libvirt_answers()):
        shutil.rmtree("/run/libvirt", ignore_errors=True)
    if STATE_DIR.exists():
        shutil.rmtree(STATE_DIR, ignore_errors=True)
    INVENTORY.unlink(missing_ok=True)
    log(f"down in {time.monotonic() - t0:.0f} s")


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


def _virsh_cleanup(log: Log) -> None:
    """Remove our domains, pool (with every volume: VM disks and the box image) and network;
    stop the other networks this libvirtd started (they live in our namespace)."""
    doms = _virsh("list", "--all", "--name", check=False).stdout.split()
    for d in doms:
        if d.startswith(DOMAIN_PREFIX):
            _virsh("destroy", d, check=False)
            _virsh("undefine", d, "--remove-all-storage", "--managed-save", "--snapshots-metadata",
                   check=False)
            log(f"removed domain {d}")
    if _virsh("pool-info", POOL, check=False).returncode == 0:
        _virsh("pool-refresh", POOL, check=False)
        for vol in _virsh("vol-list", POOL, check=False).stdout.splitlines():
            if vol.split():
                _virsh("vol-delete", "--pool", POOL, vol.split()[0], check=False)
        _virsh("pool-destroy", POOL, check=False)
        _virsh("pool-undefine", POOL, check=False)
    for net in _virsh("net-list", "--all", "--name", check=False).stdout.split():
        _virsh("net-destroy", net, check=False)
        if net == NETWORK:
            _virsh("net-undefine", net, check=False)


def status() -> dict:
    st = _load_state()
    info = {
        "netns": NETNS if _netns_exists() else None,
        "libvirtd_pid": st.get("libvirtd_pid") if _pid_alive(st.get("libvirtd_pid"), "libvirtd") else None,
        "virtlogd_pid": st.get("virtlogd_pid") if _pid_alive(st.get("virtlogd_pid"), "virtlogd") else None,
        "aptproxy_pid": (st.get("aptproxy_pid")
                         if _pid_alive(st.get("aptproxy_pid"), "apt-cacher-ng") else None),
        "apt_proxy": f"http://{APT_PROXY_ADDR}:{APT_PROXY_PORT}",
        "box": str(box_path()) if box_path().exists() else None,
        "domains": {},
        "inventory": str(INVENTORY) if INVENTORY.exists() else None,
        "leftovers": [],
    }
    if info["libvirtd_pid"]:
        for ln in _virsh("list", "--all", check=False).stdout.splitlines():
            parts = ln.split(None, 2)
            if len(parts) == 3 and parts[1].startswith(DOMAIN_PREFIX):
                info["domains"][parts[1][len(DOMAIN_PREFIX):]] = parts[2].strip()
    info["up"] = bool(st.get("up") and info["libvirtd_pid"] and info["netns"])
    if not info["up"]:
        info["leftovers"] = _leftovers()
    return info


# --- CLI (mounted as `provision vm`) -------------------------------------------------------------
app = typer.Typer(help="Vagrant VM lab: bare Debian 12 VMs (libvirt) in network namespace "
                       f"{NETNS}, inventory in inventories/vagrant.yml.", no_args_is_help=True)


@app.command("up")
def up_cmd(
    name: list[str] = typer.Option(None, "--name", "-n", help="machine name (repeat); default vm1 vm2"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="vagrant's output to a log file"),
) -> None:
    """Build/add the box if needed, start libvirtd in the lab namespace, vagrant up, write the inventory."""
    res = up(name or None, quiet=quiet)
    typer.echo(f"inventory: {res['inventory']}")
    typer.echo(f"deploy:    {' '.join(netns_prefix())} provision deploy --host {GROUP} -i {res['inventory']}")


@app.command("inventory")
def inventory_cmd(
    output: Path = typer.Option(INVENTORY, "--output", "-o", help="inventory file to write"),
    lab: bool = typer.Option(None, "--lab/--no-lab",
                             help="use the lab's namespace and env (default: when the lab is up)"),
) -> None:
    """(Re)write the Ansible-format inventory from `vagrant ssh-config`."""
    write_inventory(output, lab=lab)
    typer.echo(str(output))


@app.command("status")
def status_cmd(as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """Show the lab's namespace, daemons and VMs."""
    info = status()
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    typer.echo(f"lab:       {'up' if info['up'] else 'down'} (netns {info['netns'] or '-'})")
    typer.echo(f"libvirtd:  {info['libvirtd_pid'] or '-'}   virtlogd: {info['virtlogd_pid'] or '-'}   "
               f"apt proxy: {info['aptproxy_pid'] or '-'} ({info['apt_proxy']})")
    typer.echo(f"box:       {info['box'] or 'not built'}")
    for n, s in info["domains"].items():
        typer.echo(f"vm:        {n}: {s}")
    typer.echo(f"inventory: {info['inventory'] or '-'}")
    if info["leftovers"]:
        typer.echo(f"leftovers: {', '.join(info['leftovers'])} (`provision vm down` removes them)")


@app.command("down")
def down_cmd() -> None:
    """Destroy the VMs and everything `up` made (idempotent)."""
    down()


@app.command("build-box")
def build_box_cmd(force: bool = typer.Option(False, "--force", help="rebuild even if cached")) -> None:
    """Build the Debian 12 libvirt box (cached per recipe)."""
    typer.echo(str(build_box(force=force)))
