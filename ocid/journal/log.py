"""
The journal file: framed, checksummed transactions appended and fsynced before a change is
acknowledged, with group commit, and replayed at startup.

File format (version 1)::

    header:  b"OCIDJNL1"
    frame:   length (uint32, big-endian) | crc32 of payload (uint32, big-endian) | payload

Each payload is one transaction (see L{ocid.journal.records}).  A frame that runs past the
end of the file, or a bad frame followed by nothing but zero bytes, is a torn tail left by a
crash mid-append: it is logged and cut off.  A bad frame followed by good data is corruption
in the middle; opening stops with L{CorruptJournal} naming the offset.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from ocid.errors import StorageError
from ocid.journal.records import Record, UnknownRecord, decodeTransaction, encodeTransaction
from ocid.storage.durable import fsyncDirectory

MAGIC = b"OCIDJNL1"
_FRAME = struct.Struct(">II")
#: No transaction is anywhere near this large; a length above it marks a damaged frame.
MAX_FRAME = 64 * 1024 * 1024

log = Logger()


class CorruptJournal(Exception):
    """
    The journal is damaged before its tail; starting would silently lose state.
    """

    def __init__(self, path: Path, offset: int, reason: str) -> None:
        self.path = path
        self.offset = offset
        self.reason = reason
        super().__init__(
            f"journal {path} is corrupt at byte offset {offset}: {reason}. "
            f"Nothing was changed. To start anyway, keep a copy of the file and truncate it "
            f"to {offset} bytes (losing the changes recorded after that point), for example "
            f"`cp {path} {path}.bak && truncate -s {offset} {path}`."
        )


@attrs.frozen
class ReplayResult:
    """
    What reading a journal found.

    @ivar transactions: every intact transaction, in order.
    @ivar validLength: the offset just past the last intact frame.
    @ivar tornBytes: how many bytes of torn tail followed it (0 for a clean journal).
    """

    transactions: list[list[Record]]
    validLength: int
    tornBytes: int


def _frames(data: bytes, path: Path) -> Iterator[tuple[int, bytes]]:
    """
    Yield C{(offset, payload)} of each intact frame; stop at a torn tail; raise
    L{CorruptJournal} for damage followed by more data.
    """
    offset = len(MAGIC)
    end = len(data)
    while offset < end:
        payload, reason = _frameAt(data, offset)
        if payload is None:
            if _intactFrameAfter(data, offset):
                raise CorruptJournal(path, offset, reason)
            # Nothing intact follows the damage: the torn tail of an unacknowledged append.
            return
        yield offset, payload
        offset += _FRAME.size + len(payload)


def _frameAt(data: bytes, offset: int) -> tuple[bytes | None, str]:
    """
    The payload of the intact frame at C{offset}, or C{None} and what is wrong with it.
    """
    if len(data) - offset < _FRAME.size:
        return None, "incomplete frame header"
    length, checksum = _FRAME.unpack_from(data, offset)
    start = offset + _FRAME.size
    if length > MAX_FRAME:
        return None, f"frame length {length} is too large"
    if start + length > len(data):
        return None, "frame runs past the end of the file"
    payload = data[start : start + length]
    if zlib.crc32(payload) != checksum:
        return None, "checksum mismatch"
    return payload, ""


#: How much damaged tail we search for intact frames before calling it corruption.
MAX_TORN_TAIL = 16 * 1024 * 1024


def _intactFrameAfter(data: bytes, offset: int) -> bool:
    """
    Whether any intact, non-empty frame starts after the damaged one at C{offset}.  A torn
    tail has none; corruption in the middle of the journal does.  A damaged region too
    large to search is treated as corruption, so nothing is ever dropped silently.
    """
    if len(data) - offset > MAX_TORN_TAIL:
        return True
    for candidate in range(offset + 1, len(data) - _FRAME.size + 1):
        payload, _ = _frameAt(data, candidate)
        if payload:
            return True
    return False


def readJournal(path: Path) -> ReplayResult:
    """
    Read and decode every intact transaction of the journal at C{path}.
    """
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        if MAGIC.startswith(data):
            # Torn while being created.
            return ReplayResult([], 0, len(data))
        raise CorruptJournal(path, 0, "not an ocid journal (bad header)")
    transactions = []
    validLength = len(MAGIC)
    for offset, payload in _frames(data, path):
        try:
            transactions.append(decodeTransaction(payload))
        except (UnknownRecord, ValueError) as e:
            raise CorruptJournal(path, offset, f"undecodable transaction: {e}") from e
        validLength = offset + _FRAME.size + len(payload)
    return ReplayResult(transactions, validLength, len(data) - validLength)


def frame(payload: bytes) -> bytes:
    """
    Frame C{payload} for the journal file.
    """
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


@attrs.define
class Journal:
    """
    An open journal, appending transactions with group commit: every transaction appended
    while an fsync is in progress is written and fsynced together in the next one, and each
    caller's L{Deferred} fires only once its transaction is on disk.

    File writes and fsyncs run in C{threadpool}, never on the reactor thread.
    """

    path: Path
    _reactor: IReactorThreads
    _threadpool: ThreadPool
    _file: BinaryIO
    _size: int
    _pending: list[tuple[bytes, Deferred[None]]] = attrs.field(factory=list)
    _writing: bool = False
    _broken: Exception | None = None
    _idle: list[Deferred[None]] = attrs.field(factory=list)
    #: Test hook: called in the writer thread in place of C{os.fsync}.
    _fsync: Callable[[int], None] = os.fsync

    @classmethod
    def open(
        cls, path: Path, reactor: Any, threadpool: ThreadPool | None = None
    ) -> tuple[Journal, list[list[Record]]]:
        """
        Open (creating if needed) the journal at C{path}, cutting off any torn tail, and
        return it with every transaction recorded in it.

        @raise CorruptJournal: if it is damaged anywhere but at its tail.
        """
        if threadpool is None:
            threadpool = reactor.getThreadPool()
        if not path.exists() or path.stat().st_size < len(MAGIC):
            fresh = path.with_name(path.name + ".new")
            with open(fresh, "wb") as f:
                f.write(MAGIC)
                f.flush()
                os.fsync(f.fileno())
            os.replace(fresh, path)
            fsyncDirectory(path.parent)
            result = ReplayResult([], len(MAGIC), 0)
        else:
            result = readJournal(path)
        if result.tornBytes:
            log.warn(
                "journal {path} had a torn tail of {torn} bytes after offset {offset} "
                "(a crash during a write that was never acknowledged); cutting it off",
                path=str(path),
                torn=result.tornBytes,
                offset=result.validLength,
            )
            with open(path, "r+b") as f:
                f.truncate(result.validLength)
                f.flush()
                os.fsync(f.fileno())
        f = open(path, "ab", buffering=0)
        journal = cls(path, reactor, threadpool, f, result.validLength)
        log.info(
            "journal {path} replayed: {count} transactions, {size} bytes",
            path=str(path),
            count=len(result.transactions),
            size=result.validLength,
        )
        return journal, result.transactions

    def append(self, records: list[Record]) -> Deferred[None]:
        """
        Append one transaction; the result fires once it is durable, or fails with
        L{StorageError} if the disk refused it (and then nothing of it is in the journal).
        """
        if self._broken is not None:
            return _failed(StorageError(f"journal is unwritable: {self._broken}"))
        d: Deferred[None] = Deferred()
        self._pending.append((frame(encodeTransaction(records)), d))
        if not self._writing:
            self._writeBatch()
        return d

    def _writeBatch(self) -> None:
        batch, self._pending = self._pending, []
        self._writing = True
        data = b"".join(chunk for chunk, _ in batch)
        start = self._size

        def write() -> None:
            fd = self._file.fileno()
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
            except OSError:
                # Take back whatever part of the batch reached the file (ENOSPC, say), so
                # the next batch does not follow a torn frame; later appends may succeed.
                try:
                    os.ftruncate(fd, start)
                except OSError as e:
                    raise _Unrecoverable(e) from e
                raise
            try:
                self._fsync(fd)
            except OSError as e:
                # After a failed fsync the kernel may have dropped the dirty pages: what is
                # on disk is unknown, so no further append can be promised durable.
                try:
                    os.ftruncate(fd, start)
                except OSError:
                    pass
                raise _Unrecoverable(e) from e

        def written(_: None) -> None:
            self._size = start + len(data)
            for _chunk, d in batch:
                d.callback(None)

        def failed(failure: Any) -> None:
            error = failure.value
            log.failure(
                "journal append of {count} transactions failed", failure, count=len(batch)
            )
            if isinstance(error, _Unrecoverable):
                self._broken = error.error
            for _chunk, d in batch:
                d.errback(StorageError(f"journal write failed: {error}"))

        def next(_: None) -> None:
            self._writing = False
            if self._pending:
                self._writeBatch()
            else:
                idle, self._idle = self._idle, []
                for d in idle:
                    d.callback(None)

        wd = deferToThreadPool(self._reactor, self._threadpool, write)
        wd.addCallbacks(written, failed)
        wd.addCallback(next)

    def whenIdle(self) -> Deferred[None]:
        """
        Fire once every transaction appended so far is written.
        """
        if not self._writing:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._idle.append(d)
        return d

    def close(self) -> Deferred[None]:
        """
        Wait for pending appends, then close the file.
        """

        def close(_: None) -> None:
            self._file.close()

        return self.whenIdle().addCallback(close)


class _Unrecoverable(Exception):
    """
    A journal write failed in a way that leaves the file's durable state unknown.
    """

    def __init__(self, error: OSError) -> None:
        self.error = error
        super().__init__(str(error))


def _failed(error: Exception) -> Deferred[None]:
    d: Deferred[None] = Deferred()
    d.errback(error)
    return d
