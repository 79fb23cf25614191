"""An ACME server for lab tests: Debian's pebble, in a network namespace of the test's own on the lab's
bridge, so lab hosts reach it and it reaches them (HTTP-01) and nothing else. Started and ended by PID.

Pebble resolves names from the namespace's own hosts file (`ip netns exec` mounts /etc/netns/NS/hosts
over /etc/hosts); its resolv.conf points at the namespace's loopback, so an unknown name fails there.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from provisioner.labs.container import network

PORT, MANAGEMENT_PORT = 14000, 15000


@dataclass
class Pebble:
    address: str
    tls_ca: Path          # what lab hosts and the test trust to talk to pebble itself
    process: subprocess.Popen

    @property
    def directory(self) -> str:
        return f"https://{self.address}:{PORT}/dir"

    def issuing_root(self, path: Path) -> Path:
        """Pebble's root CA (it makes a new one per run): what a client trusts to verify a certificate."""
        context = ssl.create_default_context(cafile=str(self.tls_ca))
        with urllib.request.urlopen(f"https://{self.address}:{MANAGEMENT_PORT}/roots/0", context=context,
                                    timeout=10) as answer:
            path.write_bytes(answer.read())
        return path


def _tls_ca(address: str, workdir: Path) -> tuple[Path, Path]:
    cert, key = workdir / "pebble-tls.pem", workdir / "pebble-tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "2", "-subj", "/CN=pebble lab", "-addext", f"subjectAltName=IP:{address}",
                    "-addext", "basicConstraints=critical,CA:TRUE", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


def address_beside(host_address: str) -> str:
    """Pebble's address: .250 of the lab host's subnet."""
    return str(ipaddress.ip_network(f"{host_address}/24", strict=False).network_address + 250)


def start(instance: str, host_address: str, names: dict[str, str], workdir: Path) -> Pebble:
    """Pebble beside a lab host, finding `names` (name -> address) at those addresses."""
    subnet = str(ipaddress.ip_network(f"{host_address}/24", strict=False))
    address = address_beside(host_address)
    ns, _ = network.create_host_net(instance, "pebble", address, subnet)
    etc = Path("/etc/netns") / ns
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "hosts").write_text("127.0.0.1 localhost\n" + "".join(f"{ip} {name}\n" for name, ip in names.items()))
    (etc / "resolv.conf").write_text("nameserver 127.0.0.1\n")
    cert, key = _tls_ca(address, workdir)
    config = workdir / "pebble.json"
    config.write_text(json.dumps({"pebble": {
        "listenAddress": f"{address}:{PORT}", "managementListenAddress": f"{address}:{MANAGEMENT_PORT}",
        "certificate": str(cert), "privateKey": str(key), "httpPort": 80, "tlsPort": 443,
        # certificates name a responder, as a real CA's do (nothing asks it: testssl does not phone out)
        "ocspResponderURL": f"http://{address}:4002", "externalAccountBindingRequired": False}}))
    log = (workdir / "pebble.log").open("w")
    process = subprocess.Popen(["ip", "netns", "exec", ns, "env", "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0",
                                "pebble", "-config", str(config)], stdout=log, stderr=subprocess.STDOUT)
    pebble = Pebble(address, cert, process)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and process.poll() is None:
        with socket.socket() as probe:
            probe.settimeout(0.5)
            if probe.connect_ex((address, PORT)) == 0:
                return pebble
        time.sleep(0.2)
    stop(pebble, instance)
    raise RuntimeError(f"pebble did not start: {(workdir / 'pebble.log').read_text()[-2000:]}")


def stop(pebble: Pebble, instance: str) -> None:
    """End pebble by its PID, then remove its namespace and files."""
    if pebble.process.poll() is None:
        pebble.process.terminate()
        try:
            pebble.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pebble.process.kill()
            pebble.process.wait()
    ns = network.netns_name(instance, "pebble")
    network.delete_host_net(ns, network.veth_name(instance, pebble.address))
    shutil.rmtree(Path("/etc/netns") / ns, ignore_errors=True)
