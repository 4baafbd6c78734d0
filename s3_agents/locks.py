"""Exclusive locks on files that name their holder, and atomic file writes.

``flock`` locks belong to the open file: the operating system releases them when the process ends,
even on SIGKILL, so a killed run never leaves a stale lock behind. The lock file keeps the holder's
pid, so a refused process can say who holds it.
"""

from __future__ import annotations

import fcntl
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from s3_agents.errors import BusyError

__all__ = ["hold_lock", "locked", "atomic_path", "write_atomic", "fsync_dir"]


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (a rename into it) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file beside ``path`` to write; when the block succeeds, publish it as ``path``.

    The file is flushed to disk, renamed onto ``path`` and the rename flushed, so readers, and a crash, see the
    old file or the new one, never half of it. If the block raises, the temporary file is removed and ``path``
    is left as it was.

    Example:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp()) / "rows.jsonl"
        >>> with atomic_path(out) as tmp:
        ...     _ = tmp.write_text('{"n": 1}\\n')
        >>> out.read_text()
        '{"n": 1}\\n'
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` all at once (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def hold_lock(path: str | Path, busy: str, advice: str = "") -> TextIO:
    """Take the exclusive lock ``path`` (created if missing) for this process; close the handle to release it.

    Args:
        path: The lock file.
        busy: What is going on when another process holds it; ``" (pid N)"`` is added.
        advice: What to do about it, added after the pid.

    Raises:
        BusyError: If another process holds the lock (a ``RuntimeError`` too).

    Example:
        >>> handle = hold_lock("/tmp/s3-doc.lock", "another run is writing /tmp/s3-doc")
        >>> handle.close()
    """
    handle = open(path, "a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise BusyError(f"{busy} (pid {holder})" + (f"; {advice}" if advice else "")) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


@contextmanager
def locked(path: str | Path, busy: str, advice: str = "") -> Iterator[None]:
    """:func:`hold_lock` for the duration of a ``with`` block."""
    handle = hold_lock(path, busy, advice)
    try:
        yield
    finally:
        handle.close()
