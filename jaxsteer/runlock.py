"""One writer per run folder: an exclusive OS lock on a file in the folder.

``flock`` locks belong to the open file, so the kernel drops one when its process dies: a killed
run never leaves a stale lock to clean up, and the next run simply takes it. The lock file
itself stays (hidden, a few bytes) and names its last holder, which is how a refused writer can
say who holds the folder. Linux NFS clients map ``flock`` to NFS byte-range locks, so the lock
also holds across the hosts of a pod sharing a file system.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from jaxsteer.errors import UserError

PREFIX = ".jaxsteer"   # lock files start with this; stores ignore them as "content"
NAME = f"{PREFIX}.lock"


def is_lock_file(path: Path) -> bool:
    return path.name.startswith(PREFIX) and path.name.endswith(".lock")


def holder(path: Path) -> str:
    """Who holds (or last held) the lock at ``path``, as words for an error message."""
    try:
        info = json.loads(Path(path).read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if "pid" not in info:
        return "another process (it has not yet said which)"
    return f"pid {info['pid']} on host {info.get('host', '?')}, since {info.get('since', '?')}"


@contextlib.contextmanager
def hold(folder: str | os.PathLike, name: str = NAME) -> Iterator[Path]:
    """Holds the exclusive lock ``folder/name`` for the block (creating the folder); a second
    writer gets a `UserError` naming the holder's pid and host."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{folder} is being written by another jaxsteer run "
                            f"({holder(path)}): wait for it to finish, or choose another "
                            "--out") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode())
        yield path
    finally:
        os.close(fd)   # releases the lock
