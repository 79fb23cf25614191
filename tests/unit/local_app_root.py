"""An app_root on this machine that releases are deployed to as the engine deploys them to a host: the
release probe, the plan, the transfer (written to a file instead of sent) and the change script, run
with the local sh. For unit tests of the release's host side (tests/unit/test_release_store.py)."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

from provisioner.resources import AppRelease, Decision, SystemFacts


class LocalAppRoot:
    def __init__(self, root: Path, system: SystemFacts, keep: int = 3):
        self.root, self.system, self.keep = root, system, keep
        self.sent: list[tarfile.TarInfo] = []  # the last deploy's transfer, member by member

    def deploy(self, src: Path, requirements: str = "requirements.txt") -> Decision:
        release = AppRelease(src, requirements, str(self.root), keep=self.keep)
        decision = release.decide(release.parse(self.sh(release.probe())), self.system)
        self.sent = []
        if decision.changed:
            upload = self.root.parent / "upload.tar"
            if decision.upload:
                with decision.upload().open() as stream, upload.open("wb") as out:
                    while chunk := stream.read(1 << 20):
                        out.write(chunk)
                with tarfile.open(upload) as tar:
                    self.sent = tar.getmembers()
            self.sh(f"UPLOAD={upload}\nset -e\n{decision.script}")
        return decision

    def sh(self, script: str) -> str:
        done = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def release(self, name: str = "current") -> Path:
        return (self.root / name).resolve()
