"""Benchmark: what an SSH connection costs provision (paramiko) by key exchange and host key type.

    sudo python bench/ssh_handshake.py --inventory lab.yml [--repeat 10]

Each variant offers paramiko only one kex or one host key algorithm (the rest of paramiko's defaults
unchanged) and times TCP connect + handshake + public-key auth + one `true` on a channel to the
first host of the inventory, interleaved, median of --repeat. 'default' is what provision offers
(paramiko's own preference order); the line under the table names what it negotiated. Compare ratios
from one run: the machine is shared.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import time
from pathlib import Path

import paramiko

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from provisioner.inventory import load_inventory  # noqa: E402

KEX = ["curve25519-sha256@libssh.org", "ecdh-sha2-nistp256", "diffie-hellman-group14-sha256",
       "diffie-hellman-group16-sha512", "mlkem768x25519-sha256"]
HOST_KEYS = ["ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512"]


def only(kind: str, keep: str) -> dict:
    """disabled_algorithms that leave `keep` the only one of `kind` (kex or keys) paramiko offers."""
    offered = paramiko.Transport._preferred_kex if kind == "kex" else paramiko.Transport._preferred_keys
    return {kind: [a for a in offered if a != keep]}


def connect(host, disabled: dict) -> tuple[float, str]:
    """Seconds for connect + handshake + auth + one command; the kex and host key negotiated."""
    key = paramiko.Ed25519Key.from_private_key_file(str(host.key_file))
    started = time.perf_counter()
    sock = socket.create_connection((host.address, host.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    transport = paramiko.Transport(sock, disabled_algorithms=disabled)
    kex_names = {engine: name for name, engine in transport._kex_info.items()}
    agreed = []
    start_kex = transport._parse_kex_init

    def noted(m):  # the kex paramiko agreed on is dropped once done: note it on the way
        start_kex(m)
        agreed.append(kex_names.get(type(transport.kex_engine), "?"))
    transport._parse_kex_init = noted
    try:
        transport.start_client(timeout=10)
        transport.auth_publickey(host.user, key)
        channel = transport.open_session()
        channel.exec_command("true")
        channel.recv_exit_status()
        seconds = time.perf_counter() - started
        return seconds, f"{agreed[0] if agreed else '?'} / {transport.host_key_type}"
    finally:
        transport.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", required=True)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    host = load_inventory(Path(args.inventory)).select("all")[0]
    variants = {"default": {}, **{f"kex {k}": only("kex", k) for k in KEX},
                **{f"host key {k}": only("keys", k) for k in HOST_KEYS}}
    times: dict[str, list[float]] = {name: [] for name in variants}
    negotiated: dict[str, str] = {}
    for _ in range(args.repeat):
        for name, disabled in variants.items():
            try:
                seconds, negotiated[name] = connect(host, disabled)
                times[name].append(seconds)
            except (paramiko.SSHException, OSError) as e:
                negotiated[name] = f"not offered by the host: {type(e).__name__}"
    print(f"host {host.name}: connect + handshake + auth + one command, median of {args.repeat}")
    for name, values in times.items():
        figure = f"{statistics.median(values) * 1000:7.1f} ms" if values else "      -   "
        print(f"  {name:42} {figure}  {negotiated.get(name, '')}")


if __name__ == "__main__":
    main()
