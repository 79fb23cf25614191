"""provision's end state as a pyinfra 3 deploy, written the way a pyinfra user would.

    BENCH_STATE=state.json pyinfra INVENTORY bench/pyinfra_deploy.py --sudo -y

Reads the manifest bench/compare_state.py exports (packages, our rendered files, links, paths that
must be absent, services, the release archive), so the files it writes are provision's own.
"""

import json
import os

from pyinfra import host
from pyinfra.facts.files import File as FileFact
from pyinfra.facts.server import Command
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

with open(os.environ["BENCH_STATE"]) as f:
    STATE = json.load(f)

apt.packages(name="packages", packages=STATE["packages"], update=True, cache_time=3600, no_recommends=True)

for user in STATE["users"]:
    server.group(name=f"group {user['name']}", group=user["name"], system=True)
    server.user(name=f"user {user['name']}", user=user["name"], group=user["name"], home=user["home"],
                shell="/usr/sbin/nologin", system=True, create_home=False, ensure_home=False)

for d in STATE["dirs"]:
    files.directory(name=f"dir {d['path']}", path=d["path"], mode=d["mode"], user=d["owner"], group=d["group"])

notified: dict[str, list] = {"restart app": [], "reload nginx": []}

release = STATE["release"]
if not host.get_fact(FileFact, path=f"{release['target']}/.complete"):
    upload = files.put(name="release archive", src=release["archive"], dest=f"/tmp/release-{release['id']}.tar.gz")
    notified["restart app"].append(server.shell(name="release install", commands=[
        f"rm -rf {release['target']} && mkdir -p {release['target']}",
        f"tar -xzf /tmp/release-{release['id']}.tar.gz -C {release['target']}",
        *release["install"],
    ]))
notified["restart app"].append(files.link(name="current release", path=f"{release['root']}/current",
                                          target=release["target"]))

units = []
for f in STATE["files"]:
    op = files.put(name=f"file {f['path']}", src=f["src"], dest=f["path"], mode=f["mode"], user=f["owner"],
                   group=f["group"])
    for handler in f["notify"]:
        notified[handler].append(op)
    if f["unit"]:
        units.append(op)
for link in STATE["links"]:
    op = files.link(name=f"link {link['path']}", path=link["path"], target=link["target"])
    for handler in link["notify"]:
        notified[handler].append(op)
for gone in STATE["absent"]:
    op = files.file(name=f"absent {gone['path']}", path=gone["path"], present=False, force=True,
                   force_backup=False)
    for handler in gone["notify"]:
        notified.setdefault(handler, []).append(op)

if units:
    systemd.daemon_reload(name="daemon-reload", _if=any_changed(*units))
for service in STATE["services"]:
    systemd.service(name=f"service {service['name']}", service=service["name"], running=service["running"],
                    enabled=service["enabled"])
    # Debian's uwsgi is a SysV script: pyinfra's systemd facts never see it enabled, so ask systemctl
    if not service["enabled"] and host.get_fact(Command, f"systemctl is-enabled {service['name']} 2>/dev/null || true") \
            not in ("disabled", "masked", ""):
        server.shell(name=f"disable {service['name']}", commands=[f"systemctl disable -q {service['name']}"])
server.shell(name="restart app", commands=[STATE["handlers"]["restart app"]], _if=any_changed(*notified["restart app"]))
server.shell(name="reload nginx", commands=[STATE["handlers"]["reload nginx"]],
             _if=any_changed(*notified["reload nginx"]))
