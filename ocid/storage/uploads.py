"""
Blob upload sessions: one directory per session under C{<data>/uploads}, holding the bytes
received so far (C{data}) and what the session is for (C{info}).  Sessions survive a
restart: their size is the size of their data file, and their hash is recomputed from it
when they complete.  A session untouched for the expiry time is removed by
L{UploadStore.expire}; after a restart its age comes from its data file's modification time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from ocid.digest import ALGORITHMS, Digest, Hasher, newHasher
from ocid.errors import BLOB_UPLOAD_UNKNOWN, RegistryError, StorageError
from ocid.storage.hashing import HashingThread

log = Logger()

_SESSION_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

#: A session holding this many bytes not yet synced starts writing them to disk.
BACKGROUND_SYNC_EVERY = 32 * 1024 * 1024
#: Write buffer of an open session file: few, large writes.
WRITE_BUFFER = 1024 * 1024


def appendFile(path: Path) -> BinaryIO:
    """
    Open C{path} for appending with a large write buffer: how a session opens its data
    file unless a test injects another opener.
    """
    return open(path, "ab", buffering=WRITE_BUFFER)


@attrs.define(eq=False)
class UploadSession:
    """
    One blob upload in progress.

    A request writing to the session opens its writer, which marks the session's state
    (size and hash); if the disk then refuses a write, L{rollback} truncates the data file
    back to that mark, so the session never claims bytes that are not on disk.

    @ivar id: the session's UUID, the last segment of its upload URL.
    @ivar repository: the repository it uploads into.
    @ivar directory: its directory on disk.
    @ivar algorithm: the algorithm hashed incrementally as bytes arrive.
    @ivar size: how many bytes it holds.
    @ivar hasher: the incremental hash of those bytes, or C{None} when it must be
        recomputed from the file (after a restart).
    @ivar touched: when it last received bytes or was created (reactor time).
    @ivar writer: the open data file while a request is writing to it.
    @ivar opener: opens the data file for appending.
    """

    id: str
    repository: str
    directory: Path
    algorithm: str
    size: int
    hasher: Hasher | None
    touched: float
    writer: BinaryIO | None = None
    opener: Callable[[Path], BinaryIO] = appendFile
    backgroundSync: Callable[[int], Deferred[None]] | None = None
    _mark: tuple[int, Hasher | None] | None = None
    _unsynced: int = 0
    _syncing: bool = False
    _syncError: OSError | None = None

    @property
    def dataPath(self) -> Path:
        """
        The file holding the bytes received so far.
        """
        return self.directory / "data"

    @property
    def busy(self) -> bool:
        """
        Whether a request is writing to this session right now.
        """
        return self.writer is not None

    def openWriter(self) -> None:
        """
        Open the data file for appending, and mark the current state for L{rollback}.
        """
        assert self.writer is None
        self.writer = self.opener(self.dataPath)
        self._mark = (self.size, None if self.hasher is None else self.hasher.copy())

    def write(self, data: bytes) -> None:
        """
        Append C{data} (the writer must be open), hashing it on the way.
        """
        assert self.writer is not None
        if self._syncError is not None:
            raise self._syncError
        self.writer.write(data)
        if self.hasher is not None:
            self.hasher.update(data)
        self.size += len(data)
        self._unsynced += len(data)
        if self._unsynced >= BACKGROUND_SYNC_EVERY:
            self._syncInBackground()

    def _syncInBackground(self) -> None:
        """
        Start writing what this session holds to disk while more bytes arrive, so that the
        fsync when it completes has little left to do: the network and the disk work at
        the same time instead of one after the other.
        """
        if self.backgroundSync is None or self._syncing or self.writer is None:
            return
        self.writer.flush()
        self._unsynced = 0
        self._syncing = True
        # A descriptor of its own, so that closing the writer cannot pull it away.
        fd = os.dup(self.writer.fileno())

        def synced(result: object) -> None:
            self._syncing = False
            if isinstance(result, Failure):
                # The kernel reports a writeback error once: keep it for the next write
                # or the close, which then fail (and roll the session back).
                self._syncError = result.value
                log.failure("background sync of upload {session} failed", result,
                            session=self.id)

        self.backgroundSync(fd).addBoth(synced)

    def closeWriter(self) -> None:
        """
        Flush and close the data file.  If the flush fails the file is closed anyway and
        the error raised; call L{rollback} then (the mark is kept for it).
        """
        writer, self.writer = self.writer, None
        if writer is None:
            return
        if self._syncError is not None:
            error, self._syncError = self._syncError, None
            _closeQuietly(writer)
            raise error
        try:
            writer.close()
        except BaseException:
            # A failed flush may leave a buffered file open; drop the buffer.
            _closeQuietly(writer)
            raise
        self._mark = None

    def rollback(self) -> None:
        """
        Forget everything written since L{openWriter}: close the writer without caring
        whether its buffer reaches the disk, truncate the data file back to the marked
        size and restore the hash.

        @raise OSError: if the file could not be truncated; its content is then unknown
            and the session should be removed.
        """
        mark, self._mark = self._mark, None
        writer, self.writer = self.writer, None
        if writer is not None:
            _closeQuietly(writer)
        if mark is None:
            return
        size, hasher = mark
        os.truncate(self.dataPath, size)
        self.size = size
        self.hasher = hasher

    def digestIn(self, algorithm: str) -> Digest | None:
        """
        The digest of the bytes so far, if it is known without reading the file.
        """
        if self.hasher is not None and self.algorithm == algorithm:
            return Digest(algorithm, self.hasher.hexdigest())
        return None


def _closeQuietly(f: BinaryIO) -> None:
    """
    Close C{f}, discarding whatever of its write buffer cannot be written.
    """
    try:
        f.close()
    except OSError:
        pass
    if not f.closed:
        raw = getattr(f, "raw", None)
        if raw is not None:
            try:
                raw.close()
            except OSError:
                pass


def syncAndClose(fd: int) -> None:
    """
    C{fdatasync} the file descriptor C{fd}, then close it.  Blocking: call it in a thread.
    """
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


def hashFile(path: Path, algorithm: str, chunkSize: int = 4 * 1024 * 1024) -> Digest:
    """
    The digest of the file at C{path}.  Blocking: call it in a thread.
    """
    hasher = newHasher(algorithm)
    with open(path, "rb", buffering=0) as f:
        buffer = bytearray(chunkSize)
        view = memoryview(buffer)
        while True:
            n = f.readinto(buffer)
            if not n:
                break
            hasher.update(view[:n])
    return Digest(algorithm, hasher.hexdigest())


@attrs.define
class UploadStore:
    """
    Every upload session, in memory and under C{root} on disk.

    @ivar opener: how sessions open their data files for appending (tests inject failing
        files here).
    @ivar wallClock: the wall-clock time, to age the sessions an earlier run left by
        their files' modification times.
    @ivar backgroundSync: C{fdatasync}s and closes a file descriptor off the reactor
        thread; sessions use it to write large uploads to disk as they arrive.  Without it,
        nothing is written to disk before the upload completes.
    @ivar hashing: where new sessions hash large pieces of their bytes, off the reactor
        thread; without it they hash as the bytes arrive.
    """

    root: Path
    _clock: IReactorTime
    _sessions: dict[str, UploadSession] = attrs.field(factory=dict)
    opener: Callable[[Path], BinaryIO] = appendFile
    wallClock: Callable[[], float] = time.time
    backgroundSync: Callable[[int], Deferred[None]] | None = None
    hashing: HashingThread | None = None

    def load(self) -> None:
        """
        Find the sessions left on disk by an earlier run.  Each keeps the age it had: its
        last activity is when its data file was last modified, so a restart does not give
        abandoned sessions a new lease of life.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        now = self._clock.seconds()
        wallNow = self.wallClock()
        for directory in self.root.iterdir():
            if _SESSION_ID.match(directory.name) is None or not directory.is_dir():
                log.warn(
                    "removing unexpected entry {path} from the upload directory",
                    path=str(directory),
                )
                _removePath(directory)
                continue
            try:
                info = json.loads((directory / "info").read_text())
                stat = (directory / "data").stat()
                age = max(0.0, wallNow - stat.st_mtime)
                session = UploadSession(
                    id=directory.name,
                    repository=info["repository"],
                    directory=directory,
                    algorithm=info["algorithm"],
                    size=stat.st_size,
                    hasher=None,
                    touched=now - age,
                    opener=self.opener,
            backgroundSync=self.backgroundSync,
                )
            except (OSError, ValueError, KeyError, TypeError):
                log.warn(
                    "removing unreadable upload session {directory}",
                    directory=str(directory),
                )
                _removePath(directory)
                continue
            self._sessions[session.id] = session
        log.info("found {count} upload sessions in progress", count=len(self._sessions))

    def create(self, repository: str, algorithm: str = "sha256") -> UploadSession:
        """
        Start a new session for C{repository}, hashing with C{algorithm}.

        @raise StorageError: if the disk refused to create its files (nothing is left
            behind then).
        """
        if algorithm not in ALGORITHMS:
            raise ValueError(algorithm)
        sessionID = str(uuid.uuid4())
        directory = self.root / sessionID
        try:
            directory.mkdir()
            (directory / "data").touch()
            (directory / "info").write_text(
                json.dumps({"repository": repository, "algorithm": algorithm})
            )
        except OSError as e:
            shutil.rmtree(directory, ignore_errors=True)
            raise StorageError(f"could not create an upload session: {e}") from e
        session = UploadSession(
            id=sessionID,
            repository=repository,
            directory=directory,
            algorithm=algorithm,
            size=0,
            hasher=self._newHasher(algorithm),
            touched=self._clock.seconds(),
            opener=self.opener,
            backgroundSync=self.backgroundSync,
        )
        self._sessions[sessionID] = session
        return session

    def _newHasher(self, algorithm: str) -> Hasher:
        hasher = newHasher(algorithm)
        if self.hashing is not None:
            return self.hashing.hasher(hasher)
        return hasher

    def touch(self, session: UploadSession) -> None:
        """
        Note that C{session} was just active (it received bytes), for L{expire}.
        """
        session.touched = self._clock.seconds()

    def get(self, repository: str, sessionID: str) -> UploadSession:
        """
        The session C{sessionID} of C{repository}, or C{BLOB_UPLOAD_UNKNOWN}.
        """
        session = self._sessions.get(sessionID)
        if session is None or session.repository != repository:
            raise RegistryError(
                BLOB_UPLOAD_UNKNOWN, detail={"session": sessionID[:100]}
            )
        return session

    def remove(self, session: UploadSession) -> None:
        """
        Forget C{session} and delete its files.
        """
        try:
            session.closeWriter()
        except OSError:
            pass
        self._sessions.pop(session.id, None)
        shutil.rmtree(session.directory, ignore_errors=True)

    def detach(self, session: UploadSession) -> None:
        """
        Forget C{session} without touching its files (its data file is being committed).
        """
        self._sessions.pop(session.id, None)

    def expire(self, maxIdle: float) -> int:
        """
        Remove every session not touched for C{maxIdle} seconds and not being written;
        return how many.
        """
        cutoff = self._clock.seconds() - maxIdle
        stale = [
            s for s in self._sessions.values() if s.touched < cutoff and not s.busy
        ]
        for session in stale:
            log.info(
                "expiring upload session {session} of {repository} ({size} bytes)",
                session=session.id,
                repository=session.repository,
                size=session.size,
            )
            self.remove(session)
        return len(stale)

    def __len__(self) -> int:
        return len(self._sessions)


def isSessionID(text: str) -> bool:
    """
    Whether C{text} has the form of a session id we hand out.
    """
    return _SESSION_ID.match(text) is not None


def _removePath(path: Path) -> None:
    """
    Remove C{path}, a directory tree or a file, ignoring errors.
    """
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except OSError:
            pass
