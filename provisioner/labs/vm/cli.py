"""`provision vm up|inventory|status|down|build-box`: the VM lab from the command line (typer sub-app)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from . import VmLab, status, vagrant
from .box import build_box
from .config import GROUP, INVENTORY, NETNS, netns_prefix

app = typer.Typer(help="Vagrant VM lab: bare Debian 12 VMs (libvirt) in network namespace "
                       f"{NETNS}, inventory in inventories/vagrant.yml.", no_args_is_help=True)


@app.command("up")
def up_cmd(
    name: list[str] = typer.Option(None, "--name", "-n", help="machine name (repeat); default vm1 vm2"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="vagrant's output to a log file"),
) -> None:
    """Build/add the box if needed, start libvirtd in the lab namespace, vagrant up, write the inventory."""
    lab = VmLab(name or None, quiet=quiet)
    lab.up()
    typer.echo(f"inventory: {lab.inventory()}")
    typer.echo(f"deploy:    {' '.join(netns_prefix())} provision deploy --host {GROUP} -i {lab.inventory()}")


@app.command("inventory")
def inventory_cmd(
    output: Path = typer.Option(INVENTORY, "--output", "-o", help="inventory file to write"),
    lab: bool = typer.Option(None, "--lab/--no-lab",
                             help="use the lab's namespace and env (default: when the lab is up)"),
) -> None:
    """(Re)write the Ansible-format inventory from `vagrant ssh-config`."""
    vagrant.write_inventory(output, lab=lab)
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
    VmLab().down()


@app.command("build-box")
def build_box_cmd(force: bool = typer.Option(False, "--force", help="rebuild even if cached")) -> None:
    """Build the Debian 12 libvirt box (cached per recipe)."""
    typer.echo(str(build_box(force=force)))
