"""
Blob upload sessions: one directory per session under C{<data>/uploads}, holding the bytes
received so far (C{data}) and what the session is for (C{info}).  Sessions survive a
restart: their size is the size of their data file, and their hash is recomputed from it
when they complete.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from pathlib import Path
from typing import BinaryIO

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from ocid.digest import ALGORITHMS, Digest, Hasher, newHasher
from ocid.errors import BLOB_UPLOAD_UNKNOWN, RegistryError

log = Logger()

_SESSION_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

#: Write buffer of an open session file: few, large writes.
WRITE_BUFFER = 1024 * 1024


@attrs.define(eq=False)
class UploadSession:
    """
    One blob upload in progress.

    @ivar id: the session's UUID, the last segment of its upload URL.
    @ivar repository: the repository it uploads into.
    @ivar directory: its directory on disk.
    @ivar algorithm: the algorithm hashed incrementally as bytes arrive.
    @ivar size: how many bytes it holds.
    @ivar hasher: the incremental hash of those bytes, or C{None} when it must be
        recomputed from the file (after a restart).
    @ivar writer: the open data file while a request is writing to it.
    @ivar touched: when it last received bytes or was created (reactor time).
    """

    id: str
    repository: str
    directory: Path
    algorithm: str
    size: int
    hasher: Hasher | None
    touched: float
    writer: BinaryIO | None = None

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
        Open the data file for appending.
        """
        assert self.writer is None
        self.writer = open(self.dataPath, "ab", buffering=WRITE_BUFFER)

    def write(self, data: bytes) -> None:
        """
        Append C{data} (the writer must be open), hashing it on the way.
        """
        assert self.writer is not None
        self.writer.write(data)
        if self.hasher is not None:
            self.hasher.update(data)
        self.size += len(data)

    def closeWriter(self) -> None:
        """
        Flush and close the data file.
        """
        if self.writer is not None:
            writer, self.writer = self.writer, None
            writer.close()

    def digestIn(self, algorithm: str) -> Digest | None:
        """
        The digest of the bytes so far, if it is known without reading the file.
        """
        if self.hasher is not None and self.algorithm == algorithm:
            return Digest(algorithm, self.hasher.hexdigest())
        return None


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
    """

    root: Path
    _clock: IReactorTime
    _sessions: dict[str, UploadSession] = attrs.field(factory=dict)

    def load(self) -> None:
        """
        Find the sessions left on disk by an earlier run.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        now = self._clock.seconds()
        for directory in self.root.iterdir():
            try:
                info = json.loads((directory / "info").read_text())
                size = (directory / "data").stat().st_size
                session = UploadSession(
                    id=directory.name,
                    repository=info["repository"],
                    directory=directory,
                    algorithm=info["algorithm"],
                    size=size,
                    hasher=None,
                    touched=now,
                )
            except (OSError, ValueError, KeyError, TypeError):
                log.warn(
                    "removing unreadable upload session {directory}",
                    directory=str(directory),
                )
                shutil.rmtree(directory, ignore_errors=True)
                continue
            if _SESSION_ID.match(session.id) is None:
                shutil.rmtree(directory, ignore_errors=True)
                continue
            self._sessions[session.id] = session
        log.info("found {count} upload sessions in progress", count=len(self._sessions))

    def create(self, repository: str, algorithm: str = "sha256") -> UploadSession:
        """
        Start a new session for C{repository}, hashing with C{algorithm}.
        """
        if algorithm not in ALGORITHMS:
            raise ValueError(algorithm)
        sessionID = str(uuid.uuid4())
        directory = self.root / sessionID
        directory.mkdir()
        (directory / "data").touch()
        (directory / "info").write_text(
            json.dumps({"repository": repository, "algorithm": algorithm})
        )
        session = UploadSession(
            id=sessionID,
            repository=repository,
            directory=directory,
            algorithm=algorithm,
            size=0,
            hasher=newHasher(algorithm),
            touched=self._clock.seconds(),
        )
        self._sessions[sessionID] = session
        return session

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
        session.closeWriter()
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



