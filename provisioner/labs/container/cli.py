"""`provision lab up|status|down`: the container lab from the command line (typer sub-app), through the
contract every lab keeps (labs/interface.py); its errors are UserErrors that `provision` prints as any other."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Container lab: Debian 12 / 13 test hosts (systemd-nspawn) on this machine.",
                  no_args_is_help=True)
console = Console()

_INSTANCE = typer.Option("lab", "--instance", help="Lab instance name (its own subnet and hosts).")


def _table(rows) -> Table:
    t = Table(show_header=True, header_style="bold")
    for col in ("host", "address", "user", "release", "state"):
        t.add_column(col)
    for h, running in rows:
        t.add_row(h.name, h.address, h.user, h.release,
                  "[green]running[/green]" if running else "[red]stopped[/red]")
    return t


@app.command()
def up(hosts: int = typer.Option(2, "--hosts", "-n", min=1, help="Number of hosts (INSTANCE1..N)."),
       instance: str = _INSTANCE,
       inventory: Optional[Path] = typer.Option(None, "--inventory", "-i",
                                                help="Where to write the inventory (default inventories/lab.yml)."),
       release: Optional[str] = typer.Option(None, "--release", "-r",
                                             help="Debian release of the hosts: bookworm (12, the default for new "
                                                  "hosts) or trixie (13).")):
    """Start the lab hosts (idempotent) and write an Ansible-format inventory."""
    from provisioner.labs.container import ContainerLab

    t0 = time.monotonic()
    lab = ContainerLab(hosts, instance, inventory, release, log=lambda m: console.print(f"  {m}"))
    with console.status("starting the container lab ..."):
        result = lab.up()
    inv = lab.inventory()
    console.print(_table([(h, True) for h in result]))
    console.print(f"inventory: [bold]{inv}[/bold]")
    console.print(f"ssh:       ssh -i {result[0].key_file} -o UserKnownHostsFile={result[0].known_hosts} "
                  f"deploy@{result[0].address}")
    console.print(f"lab up in {time.monotonic() - t0:.1f} s: "
                  f"[bold]provision deploy --host {result[0].name}[/bold] is ready to use"
                  + ("" if instance == "lab" else f" (with -i {inv})"))


@app.command()
def status(instance: str = _INSTANCE):
    """Show the lab hosts and whether each one runs."""
    from provisioner.labs import container

    lab = container.ContainerLab(instance=instance)
    rows = lab.status()
    if not rows:
        console.print(f"lab [bold]{instance}[/bold] is down (start it with `provision lab up`)")
        return
    st = container.state.load_state(instance)
    console.print(_table(rows))
    console.print(f"subnet {st['subnet']}, apt proxy http://{st['gateway']}:{container.proxy.PORT}, "
                  f"inventory {lab.inventory()}")
    if not all(r for _, r in rows):
        console.print("some hosts are stopped: `provision lab up` restarts them")
        raise typer.Exit(1)


@app.command()
def down(instance: str = _INSTANCE):
    """Stop and remove every lab host, its network and mounts (idempotent)."""
    from provisioner.labs.container import ContainerLab

    t0 = time.monotonic()
    with console.status("stopping the container lab ..."):
        ContainerLab(instance=instance).down()
    console.print(f"lab [bold]{instance}[/bold] is down ({time.monotonic() - t0:.1f} s)")
