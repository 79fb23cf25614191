"""What travels to a host for a new release: its manifest and the files the host's store lacks, in one
tar written while it is sent (the controller keeps no copy).

    transfer = Transfer("3f9c0a1b2d4e.tar", manifest, {"<sha256>": Path("app/model.py"), ...})
    session.upload(transfer, upload_dir)     reads transfer.open() until its end

Tar layout (plain tar, root:root, fixed mtime; release_install.sh unpacks it):

    manifest.json           PlannedRelease.manifest(): the release's entries, by store name
    objects/<name>          a file the host lacks, as it is (wheels, weights: already dense)
    objects/<name>.gz       one that compresses (code, text, JSON): gzip pays for it on a slow link

Whether a file compresses is tried on its first SAMPLE bytes; a file over COMPRESS_AT_MOST travels
as it is (it would be held in memory while compressed).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import threading
import zlib
from pathlib import Path
from typing import BinaryIO

from ..errors import UserError
from . import file_digest

MTIME = 946684800  # 2000-01-01: the same input gives the same bytes
SAMPLE = 64 * 1024
COMPRESS_AT_MOST = 32 * 2**20
# Compressed to less than this share of its size, a file travels gzipped.
WORTH_IT = 0.8


def compresses(head: bytes) -> bool:
    """Whether a file starting with `head` is worth compressing (zlib's fastest level on a sample)."""
    return bool(head) and len(zlib.compress(head, 1)) < WORTH_IT * len(head)


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, MTIME, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


class _Checked(io.RawIOBase):
    """A file read once while it is sent, whose content must still be what the plan hashed."""

    def __init__(self, path: Path, digest: str):
        self._file = path.open("rb")
        self._hash = hashlib.sha256()
        self._path, self._digest = path, digest

    def readinto(self, buffer) -> int:
        n = self._file.readinto(buffer)
        self._hash.update(memoryview(buffer)[:n])
        return n

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._file.close()
        super().close()

    def verify(self) -> None:
        if self._hash.hexdigest() != self._digest:
            raise _changed(self._path)


class Transfer:
    """The tar for one host, produced by a thread into a pipe while the upload reads the other end."""

    def __init__(self, name: str, manifest: dict, objects: dict[str, Path]):
        self.name = name
        self.manifest = manifest
        self.objects = dict(sorted(objects.items()))
        self.sent_bytes = 0  # the tar's size, once read to its end
        self._error: BaseException | None = None

    def open(self) -> BinaryIO:
        read_fd, write_fd = os.pipe()
        writer = threading.Thread(target=self._write, args=(os.fdopen(write_fd, "wb"),),
                                  name=f"transfer {self.name}", daemon=True)
        writer.start()
        return _Reader(os.fdopen(read_fd, "rb"), writer, self)

    def _write(self, pipe: BinaryIO) -> None:
        try:
            with pipe, tarfile.open(fileobj=pipe, mode="w|", format=tarfile.GNU_FORMAT) as tar:
                data = json.dumps(self.manifest, sort_keys=True).encode()
                tar.addfile(_info("manifest.json", len(data)), io.BytesIO(data))
                for name, path in self.objects.items():
                    self._add(tar, name, path)
        except BrokenPipeError:
            pass  # the reader stopped (the upload failed): its error is the one to report
        except BaseException as e:  # noqa: BLE001 (re-raised by the reader in the caller's thread)
            self._error = e

    @staticmethod
    def _add(tar: tarfile.TarFile, name: str, path: Path) -> None:
        """One object; read once: a file hashed earlier in this run is checked by its stat before and
        after (file_digest.py), any other by hashing what is sent."""
        digest = name.removesuffix("-x")
        hashed = file_digest.unchanged(path, digest)
        size = path.stat().st_size
        if size <= COMPRESS_AT_MOST:
            with path.open("rb") as f:
                head = f.read(SAMPLE)
            if compresses(head):
                content = path.read_bytes()
                if not hashed and hashlib.sha256(content).hexdigest() != digest:
                    raise _changed(path)
                packed = gzip.compress(content, compresslevel=6, mtime=0)
                tar.addfile(_info(f"objects/{name}.gz", len(packed)), io.BytesIO(packed))
                if hashed and not file_digest.unchanged(path, digest):
                    raise _changed(path)
                return
        if hashed:
            with path.open("rb") as f:
                tar.addfile(_info(f"objects/{name}", size), f)
            if not file_digest.unchanged(path, digest):
                raise _changed(path)
            return
        checked = _Checked(path, digest)
        with checked:
            tar.addfile(_info(f"objects/{name}", size), io.BufferedReader(checked, 1 << 20))
            checked.verify()


def _changed(path: Path) -> UserError:
    return UserError(f"{path} changed while the release was being sent", "run the deploy again")


class _Reader(io.RawIOBase):
    """The upload's end of the pipe: at its end, the writer's error (if any) is raised here."""

    def __init__(self, pipe: BinaryIO, writer: threading.Thread, transfer: Transfer):
        self._pipe, self._writer, self._transfer = pipe, writer, transfer

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._pipe.readinto(buffer)
        self._transfer.sent_bytes += n
        if n == 0:
            self._writer.join()
            if self._transfer._error is not None:
                raise self._transfer._error
        return n

    def read(self, size: int = -1) -> bytes:  # paramiko's putfo reads with a size
        if size is None or size < 0:
            return self.readall()
        buffer = bytearray(size)
        n = self.readinto(buffer)
        return bytes(buffer[:n])

    def close(self) -> None:
        self._pipe.close()
        super().close()
