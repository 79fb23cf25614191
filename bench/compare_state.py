"""The end state every tool in the comparison must reach, taken from provision's own stack.

`export(host, out_dir)` declares the stack for one inventory host (templates rendered by our own
jinja2 code), packs the release (app + wheels) as one archive for the other tools, and writes `state.json` plus the rendered files under
`out_dir/files/`. bench/pyinfra_deploy.py and bench/playbook.yml read that manifest, so the files
they write are byte for byte ours; `provision deploy --check` after them proves the end state equal.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shlex
import tarfile
from pathlib import Path

from provisioner.resources import Absent, AppRelease, Directory, File, Link, Packages, Service, SystemUser
from provisioner.resources.release_build import plan_release, python_for
from provisioner.stack import STACK

# The lab's Debian 12 hosts: python 3.11, nginx 1.22 (before `http2 on;`), x86_64.
OS_ID, OS_VERSION, MACHINE = "debian", "12", "x86_64"


def export(host, out_dir: Path) -> dict:
    """state.json + files/ for `host` (all lab hosts share one end state); returns the manifest."""
    resources, _handlers = STACK.declare(host.vars)
    files_dir = out_dir / "files"
    files_dir.mkdir(parents=True, exist_ok=True)
    state: dict = {"packages": [], "users": [], "dirs": [], "files": [], "links": [], "absent": [],
                   "services": [], "release": None}
    for r in resources:
        if isinstance(r, Packages):
            state["packages"] += [n for n in r.names if n not in state["packages"]]
        elif isinstance(r, SystemUser):
            state["users"].append({"name": r.name, "home": r.home})
        elif isinstance(r, Directory):
            state["dirs"].append({"path": r.path, "mode": r.mode, "owner": r.owner, "group": r.group})
        elif isinstance(r, File):
            local = files_dir / r.path.strip("/").replace("/", "__")
            local.write_text(r.content)
            state["files"].append({"path": r.path, "src": str(local), "mode": r.mode, "owner": r.owner,
                                   "group": r.group, "sha256": hashlib.sha256(r.content.encode()).hexdigest(),
                                   "notify": list(r.notify), "unit": r.path.startswith("/etc/systemd/")})
        elif isinstance(r, Link):
            state["links"].append({"path": r.path, "target": r.target, "notify": list(r.notify)})
        elif isinstance(r, Absent):
            state["absent"].append({"path": r.path, "notify": list(r.notify)})
        elif isinstance(r, Service):
            state["services"].append({"name": r.name, "running": r.running, "enabled": r.enabled})
        elif isinstance(r, AppRelease):
            planned = plan_release(r.app_source, r.requirements, python_for(OS_ID, OS_VERSION), MACHINE)
            archive = out_dir / f"release-{planned.id}.tar.gz"
            _pack(planned, archive)
            # provision's host layout (resources/release_build.py), so that `deploy --check` finds it current
            state["release"] = {"id": planned.id, "archive": str(archive), "root": r.root,
                                "target": f"{r.root}/releases/{planned.id}", "requirements": planned.requirements,
                                "venv": f"{r.root}/venvs/{planned.venv}", "venv_link": f"../../venvs/{planned.venv}",
                                "tree": planned.app.tree}
            state["release"]["install"] = install_commands(state["release"])
        else:
            raise SystemExit(f"compare_state: no translation for {type(r).__name__} ({r.label()})")
    unit = next(s["name"] for s in state["services"] if s["name"].startswith("uwsgi-"))
    state["handlers"] = {"restart app": f"systemctl restart {unit}",
                         "reload nginx": "nginx -t -q && systemctl reload nginx"}
    state["health"] = {"port": host.vars.http_port, "path": host.vars.health_path}
    (out_dir / "state.json").write_text(json.dumps(state, indent=2) + "\n")
    return state


def _pack(planned, archive: Path) -> None:
    """app/ and wheels/ of the release in one tar.gz: what the other tools copy and unpack."""
    with tarfile.open(archive, "w:gz") as tar:
        for e in planned.app.entries:
            tar.add(planned.app.app_dir / e.rel, f"app/{e.rel}", recursive=False)
        for wheel in planned.wheels().values():
            tar.add(wheel, f"wheels/{wheel.name}")


def install_commands(rel: dict) -> list[str]:
    """Shell that installs the unpacked release at rel["target"] in provision's host layout."""
    t, venv = rel["target"], rel["venv"]
    return [f"rm -rf {venv} && /usr/bin/python3 -m venv {venv}",
            f"{venv}/bin/pip install -q --no-index --no-cache-dir --disable-pip-version-check "
            f"--find-links {t}/wheels -r {t}/{rel['requirements']}",
            f"touch {venv}/.complete && ln -sfn {rel['venv_link']} {t}/venv && echo {rel['tree']} > {t}/.tree",
            f"chown -R root:root {t} && chmod -R go-w {t} && touch {t}/.complete"]


def floor_params(state: dict) -> str:
    """Shell assignments that bench/floor.sh reads: what to expect, from the manifest."""
    sums = "\n".join(f"{f['sha256']}  {f['path']}" for f in state["files"])
    links = " ".join(f"{ln['path']}={ln['target']}" for ln in state["links"])
    running = " ".join(s["name"] for s in state["services"] if s["running"])
    stopped = " ".join(s["name"] for s in state["services"] if not s["running"])
    params = {"PACKAGES": " ".join(state["packages"]), "SUMS": sums, "LINKS": links,
              "ABSENT": " ".join(a["path"] for a in state["absent"]), "RUNNING": running, "STOPPED": stopped,
              "RELEASE": state["release"]["target"], "CURRENT": state["release"]["root"] + "/current",
              "HEALTH_PORT": str(state["health"]["port"]), "HEALTH_PATH": state["health"]["path"]}
    return "\n".join(f"{k}={shlex.quote(v)}" for k, v in params.items()) + "\n"


def cold_script(state: dict) -> str:
    """The cold floor: one bash script doing the same installs in one go (one SSH session, no
    checks), with the release archive and every file inside it, base64."""
    rel = state["release"]
    lines = ["set -e", "export DEBIAN_FRONTEND=noninteractive",
             "apt-get -q update >/dev/null",
             "apt-get -q -y install --no-install-recommends " + " ".join(state["packages"]) + " >/dev/null"]
    for u in state["users"]:
        lines.append(f"getent passwd {u['name']} >/dev/null || useradd --system --user-group --home-dir {u['home']} "
                     f"--no-create-home --shell /usr/sbin/nologin {u['name']}")
    for d in state["dirs"]:
        lines.append(f"install -d -m {d['mode']} -o {d['owner']} -g {d['group']} {d['path']}")
    archive = base64.b64encode(Path(rel["archive"]).read_bytes()).decode()
    t = rel["target"]
    lines += [f"rm -rf {t} && mkdir -p {t}", f"base64 -d <<'B64' | tar -xz -C {t}", archive, "B64",
              *rel["install"], f"ln -sfn {t} {rel['root']}/current"]
    for f in state["files"]:
        lines += [f"base64 -d > {f['path']} <<'B64'", base64.b64encode(Path(f["src"]).read_bytes()).decode(), "B64",
                  f"chmod {f['mode']} {f['path']} && chown {f['owner']}:{f['group']} {f['path']}"]
    lines += [f"ln -sfn {ln['target']} {ln['path']}" for ln in state["links"]]
    lines += ["rm -f " + " ".join(a["path"] for a in state["absent"]), "systemctl daemon-reload"]
    for s in state["services"]:
        lines.append(f"systemctl {'enable' if s['enabled'] else 'disable'} -q {s['name']}")
        lines.append(f"systemctl {'restart' if s['running'] else 'stop'} {s['name']}")
    return "\n".join(lines) + "\n"
