"""
Large uploads are written to disk while they arrive (L{UploadSession} background sync),
and a failed background sync fails the upload rather than being forgotten.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock

from ocid.storage.uploads import BACKGROUND_SYNC_EVERY, UploadStore, syncAndClose

CHUNK = b"z" * (1024 * 1024)


def _store(tmp_path: Path, sync: object) -> UploadStore:
    store = UploadStore(tmp_path / "uploads", Clock(), backgroundSync=sync)  # type: ignore[arg-type]
    store.load()
    return store


def test_syncsWhileReceiving(tmp_path: Path) -> None:
    """
    Every L{BACKGROUND_SYNC_EVERY} bytes, the session hands a descriptor of its data file,
    flushed up to that point, to the background sync; one sync at a time.
    """
    calls: list[tuple[int, int]] = []
    pending: list[Deferred[None]] = []

    def sync(fd: int) -> Deferred[None]:
        calls.append((fd, os.fstat(fd).st_size))
        os.close(fd)
        d: Deferred[None] = Deferred()
        pending.append(d)
        return d

    session = _store(tmp_path, sync).create("team/app")
    session.openWriter()
    chunks = BACKGROUND_SYNC_EVERY // len(CHUNK)
    for _ in range(chunks * 3):
        session.write(CHUNK)
    # The first sync is still running: no second one was started beside it.
    assert [size for _, size in calls] == [BACKGROUND_SYNC_EVERY]
    pending.pop().callback(None)
    # Bytes kept arriving during that sync: the next write starts another at once.
    for _ in range(chunks):
        session.write(CHUNK)
    assert [size for _, size in calls] == [
        BACKGROUND_SYNC_EVERY,
        3 * BACKGROUND_SYNC_EVERY + len(CHUNK),
    ]
    pending.pop().callback(None)
    session.closeWriter()
    assert session.dataPath.stat().st_size == 4 * BACKGROUND_SYNC_EVERY


def test_failedSyncFailsTheUpload(tmp_path: Path) -> None:
    """
    A background sync that fails (the disk lost the bytes) makes the next write raise,
    so the request is answered with an error and the session rolled back.
    """
    session = _store(tmp_path, lambda fd: (os.close(fd), fail(OSError(errno.EIO, "I/O error")))[1]).create("team/app")
    session.openWriter()
    for _ in range(BACKGROUND_SYNC_EVERY // len(CHUNK)):
        session.write(CHUNK)
    with pytest.raises(OSError) as raised:
        session.write(CHUNK)
    assert raised.value.errno == errno.EIO
    session.rollback()
    assert session.size == 0
    assert session.dataPath.stat().st_size == 0


def test_failedSyncFailsTheClose(tmp_path: Path) -> None:
    """
    A failed background sync is reported by the close if no write came after it.
    """
    session = _store(tmp_path, lambda fd: (os.close(fd), fail(OSError(errno.EIO, "I/O error")))[1]).create("team/app")
    session.openWriter()
    for _ in range(BACKGROUND_SYNC_EVERY // len(CHUNK)):
        session.write(CHUNK)
    with pytest.raises(OSError):
        session.closeWriter()


def test_withoutBackgroundSync(tmp_path: Path) -> None:
    """
    Without a background sync a session still takes any amount of bytes.
    """
    session = _store(tmp_path, None).create("team/app")
    session.openWriter()
    for _ in range(BACKGROUND_SYNC_EVERY // len(CHUNK) + 1):
        session.write(CHUNK)
    session.closeWriter()
    assert session.size == BACKGROUND_SYNC_EVERY + len(CHUNK)


def test_syncAndClose(tmp_path: Path) -> None:
    """
    L{syncAndClose} closes the descriptor it synced.
    """
    path = tmp_path / "f"
    path.write_bytes(b"data")
    fd = os.open(path, os.O_RDONLY)
    syncAndClose(fd)
    with pytest.raises(OSError):
        os.fstat(fd)
