"""
The journal: every change to repository state, made durable before it is acknowledged,
replayed into the in-memory index at startup, and compacted into snapshots as it grows.

The files, and why a crash at any moment loses nothing, are described in
L{ocid.journal.layout}; their format in L{ocid.journal.log} and L{ocid.journal.snapshot}.

Appends are group-committed: every transaction appended while a write is in progress is
written, as one frame, and fsynced by the next write.  Once a write is durable its
transactions are applied to the index, and only then do their appends' L{Deferred}s fire:
the index is always exactly the state the files hold.

Compaction (L{Journal.compact}; automatic once the logs since the last snapshot exceed
C{compactAfter} bytes, at startup too) happens between two writes: a copy of the index is
taken (L{RegistryIndex.image}, containers only) and a new log is started for the appends
that follow; the snapshot is then encoded and written from that copy in a thread, and the
files it replaces are removed.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from ocid.errors import StorageError
from ocid.journal.layout import LEGACY_LOG, logName, scanLayout, snapshotName
from ocid.journal.log import (
    HEADER_SIZE,
    LOG_MAGIC,
    CorruptJournal,
    FramedFile,
    LogFile,
    UnrecoverableWrite,
    frame,
)
from ocid.journal.records import (
    DigestTable,
    NewerRecord,
    Record,
    UnknownRecord,
    decodeFrames,
    encodeGroup,
    encodeTransaction,
    transactionsOf,
)
from ocid.journal.snapshot import SnapshotCancelled, readSnapshot, writeSnapshot
from ocid.storage.durable import DurableDirectory

if TYPE_CHECKING:
    from ocid.index import RegistryIndex

log = Logger()

T = TypeVar("T")

#: Compact once the logs not in a snapshot hold this many bytes (some 50,000 tags, which
#: replay in about a second).  A snapshot of a million tags loads in about as long.
DEFAULT_COMPACT_AFTER = 8 * 1024 * 1024
#: Most bytes of transactions in one frame; a larger group commit writes several.
MAX_GROUP = 8 * 1024 * 1024


@attrs.frozen
class Replayed:
    """
    What opening a journal read.

    @ivar snapshot: the generation of the snapshot loaded, or C{None}.
    @ivar logs: the generations of the logs replayed.
    @ivar transactions: how many transactions the logs held.
    @ivar logBytes: the length of those logs.
    """

    snapshot: int | None
    logs: list[int]
    transactions: int
    logBytes: int


def replay(
    directory: Path, index: RegistryIndex, files: DurableDirectory | None = None
) -> tuple[Replayed, int]:
    """
    Load the journal in C{directory} into C{index}, repairing what a crash leaves: the
    torn tail of the last log is cut off, an old-style log is renamed, leftover files of
    older generations are removed.  Blocking: part of startup.

    @return: what was read, and the intact length of the last log (0 if none).
    @raise CorruptJournal: if the files are damaged or missing where no crash explains
        it.  Nothing is changed then.
    """
    if files is None:
        files = DurableDirectory(directory)
    # Loading makes millions of objects and frees none: the cyclic garbage collector
    # would only slow it down.  The records were validated when they were written.
    collecting = gc.isenabled()
    gc.disable()
    try:
        with attrs.validators.disabled():
            return _replay(directory, index, files)
    finally:
        if collecting:
            gc.enable()


def _replay(
    directory: Path, index: RegistryIndex, files: DurableDirectory
) -> tuple[Replayed, int]:
    layout = scanLayout(directory)
    if layout.legacy:
        log.info(
            "journal {directory}: renaming the old-style log {old} to {new}",
            directory=str(directory),
            old=LEGACY_LOG,
            new=logName(0),
        )
        files.rename(LEGACY_LOG, logName(0))
    digests = DigestTable()
    apply = index.apply
    if layout.snapshot is not None:
        for transaction in readSnapshot(
            directory / snapshotName(layout.snapshot), layout.snapshot, digests
        ):
            apply(transaction)
    count = 0
    logBytes = 0
    lastLength = 0
    for generation in layout.logs:
        name = logName(generation)
        last = generation == layout.logs[-1]
        framed = FramedFile(directory / name, LOG_MAGIC, tornTail=last)
        for offsets, values in _batches(framed):
            for offset, value in zip(offsets, values, strict=True):
                try:
                    transactions = transactionsOf(value, digests)
                except NewerRecord as e:
                    raise CorruptJournal(
                        framed.path,
                        offset,
                        str(e),
                        "It was written by a newer version of ocid: run that version.",
                    ) from e
                except UnknownRecord as e:
                    raise CorruptJournal(
                        framed.path, offset, f"undecodable transaction: {e}"
                    ) from e
                for transaction in transactions:
                    apply(transaction)
                count += len(transactions)
        if framed.tornReason is not None:
            log.warn(
                "journal log {path} had a torn tail of {torn} bytes at offset {offset} "
                "({reason}): a crash during a write that was never acknowledged; "
                "cutting it off",
                path=str(framed.path),
                offset=framed.validLength,
                torn=framed.size - framed.validLength,
                reason=framed.tornReason,
            )
            if framed.validLength < HEADER_SIZE:
                files.writeAtomically(name, [LOG_MAGIC])
                framed.validLength = HEADER_SIZE
            else:
                files.truncate(name, framed.validLength)
        logBytes += framed.validLength
        lastLength = framed.validLength
    if layout.leftovers:
        log.info(
            "journal {directory}: removing leftover files {names}",
            directory=str(directory),
            names=sorted(layout.leftovers),
        )
        files.remove(sorted(layout.leftovers))
    return Replayed(layout.snapshot, layout.logs, count, logBytes), lastLength


def rewrite(directory: Path, index: RegistryIndex) -> int:
    """
    Replace the journal in C{directory}, which no registry may have open, by a snapshot
    of C{index} and an empty log, as a compaction does (so that a crash at any point
    leaves either the journal as it was or the new one).  Blocking.

    @return: the new generation.
    """
    directory.mkdir(parents=True, exist_ok=True)
    layout = scanLayout(directory)
    files = DurableDirectory(directory)
    generation = layout.generation + 1
    LogFile.create(files, logName(generation)).close()
    writeSnapshot(
        files, snapshotName(generation), generation, index.image().transactions()
    )
    replaced = [LEGACY_LOG, *layout.leftovers]
    for old in range(generation):
        replaced += [logName(old), snapshotName(old)]
    files.remove(replaced)
    return generation


#: Frames decoded together while replaying: at most this many, or this many bytes.
_BATCH_FRAMES = 4096
_BATCH_BYTES = 4 * 1024 * 1024


def _batches(framed: FramedFile) -> Iterator[tuple[list[int], list[Any]]]:
    """
    The offsets and decoded JSON values of the frames of C{framed}, in batches.

    @raise CorruptJournal: if a frame's payload is not JSON.
    """
    offsets: list[int] = []
    payloads: list[bytes] = []
    size = 0

    def decoded() -> tuple[list[int], list[Any]]:
        try:
            return offsets, decodeFrames(payloads)
        except UnknownRecord:
            for offset, payload in zip(offsets, payloads, strict=True):
                try:
                    decodeFrames([payload])
                except UnknownRecord as bad:
                    raise CorruptJournal(
                        framed.path, offset, f"undecodable transaction: {bad}"
                    ) from bad
            raise

    for offset, payload in framed.frames():
        offsets.append(offset)
        payloads.append(payload)
        size += len(payload)
        if len(payloads) >= _BATCH_FRAMES or size >= _BATCH_BYTES:
            yield decoded()
            offsets, payloads, size = [], [], 0
    if payloads:
        yield decoded()


_Pending = tuple[list[Record], bytes, Deferred[None]]


@attrs.define
class Journal:
    """
    The open journal of a registry, keeping C{index} in step with it.

    @ivar directory: the journal directory.
    @ivar compactAfter: compact once the logs not yet in a snapshot exceed this many
        bytes.
    @ivar generation: the generation of the log appended to.
    """

    directory: Path
    _index: RegistryIndex
    _reactor: Any
    _threadpool: ThreadPool
    _files: DurableDirectory
    _log: LogFile
    generation: int
    #: The oldest generation whose files are still needed.
    _oldest: int
    compactAfter: int = DEFAULT_COMPACT_AFTER
    #: Bytes of logs not in a snapshot, written or being written.
    _uncompacted: int = 0
    _compactAt: int = 0
    _pending: list[_Pending] = attrs.field(factory=list)
    _writing: bool = False
    _broken: Exception | None = None
    _idle: list[Deferred[None]] = attrs.field(factory=list)
    _rotation: Deferred[tuple[Any, int]] | None = None
    _compacting: list[Deferred[None]] | None = None
    _closing: bool = False

    @classmethod
    def open(
        cls,
        directory: Path,
        index: RegistryIndex,
        reactor: Any,
        threadpool: ThreadPool | None = None,
        compactAfter: int = DEFAULT_COMPACT_AFTER,
        files: DurableDirectory | None = None,
    ) -> Journal:
        """
        Open the journal in C{directory} (creating it if needed), replaying it into
        C{index}, which should be empty.  Blocking: part of startup.  If the logs already
        exceed C{compactAfter}, a compaction starts (in the thread pool).

        @param files: the directory's files (a test hook injecting crashes).
        @raise CorruptJournal: if the journal is damaged where no crash explains it.
        """
        if threadpool is None:
            threadpool = reactor.getThreadPool()
        directory.mkdir(parents=True, exist_ok=True)
        if files is None:
            files = DurableDirectory(directory)
        replayed, lastLength = replay(directory, index, files)
        if replayed.logs:
            generation = replayed.logs[-1]
            logFile = LogFile.open(directory / logName(generation), lastLength)
            oldest = replayed.logs[0]
        else:
            generation = oldest = 0
            logFile = LogFile.create(files, logName(generation))
        log.info(
            "journal {directory} replayed: snapshot {snapshot}, logs {logs} holding "
            "{transactions} transactions in {size} bytes",
            directory=str(directory),
            snapshot=replayed.snapshot,
            logs=replayed.logs,
            transactions=replayed.transactions,
            size=replayed.logBytes,
        )
        journal = cls(
            directory,
            index,
            reactor,
            threadpool,
            files,
            logFile,
            generation,
            oldest,
            compactAfter,
            uncompacted=replayed.logBytes or logFile.size,
            compactAt=compactAfter,
        )
        journal._maybeCompact()
        return journal

    def _inThread(self, f: Callable[..., T], *args: Any) -> Deferred[T]:
        return deferToThreadPool(self._reactor, self._threadpool, f, *args)

    # Appending.

    def append(self, records: list[Record]) -> Deferred[None]:
        """
        Append one transaction.  The result fires once it is durable and applied to the
        index, or fails with L{StorageError} if the disk refused it (and then nothing of
        it is in the journal or the index).
        """
        if self._broken is not None:
            unwritable = StorageError(f"journal is unwritable: {self._broken}")
            unwritable.__cause__ = self._broken
            return _failed(unwritable)
        if self._closing:
            return _failed(StorageError("journal is closed"))
        payload = encodeTransaction(records)
        if len(payload) > MAX_GROUP:
            return _failed(StorageError(f"transaction of {len(payload)} bytes too large"))
        d: Deferred[None] = Deferred()
        self._pending.append((records, payload, d))
        self._next()
        return d

    def _next(self) -> None:
        """
        Start whatever the log is to do next, if it is not busy: a rotation to a new
        generation, or a write of every pending transaction.
        """
        if self._writing:
            return
        if self._rotation is not None:
            self._rotate()
        elif self._pending:
            self._writeBatch()
        else:
            idle, self._idle = self._idle, []
            for d in idle:
                d.callback(None)

    def _writeBatch(self) -> None:
        batch, self._pending = self._pending, []
        self._writing = True
        frames = []
        group: list[bytes] = []
        size = 0
        for _records, payload, _d in batch:
            if group and size + len(payload) > MAX_GROUP:
                frames.append(frame(encodeGroup(group)))
                group, size = [], 0
            group.append(payload)
            size += len(payload) + 1
        frames.append(frame(encodeGroup(group)))
        data = b"".join(frames)

        def written(_: None) -> None:
            self._uncompacted += len(data)
            for records, _payload, d in batch:
                try:
                    self._index.apply(records)
                except Exception as e:
                    log.failure("applying a durable transaction to the index failed")
                    d.errback(e)
                else:
                    d.callback(None)

        def failed(failure: Failure) -> None:
            error = failure.value
            log.failure(
                "journal append of {count} transactions failed", failure, count=len(batch)
            )
            if isinstance(error, UnrecoverableWrite):
                self._broken = error.error
            cause = error.error if isinstance(error, UnrecoverableWrite) else error
            for _records, _payload, d in batch:
                storage = StorageError(f"journal write failed: {error}")
                # The OSError decides the answer (507 for a full disk, else 500).
                storage.__cause__ = cause
                d.errback(storage)

        def done(_: None) -> None:
            self._writing = False
            self._maybeCompact()
            self._next()

        self._inThread(self._log.write, data).addCallbacks(written, failed).addCallback(
            done
        )

    def whenIdle(self) -> Deferred[None]:
        """
        Fire once every transaction appended so far is written.
        """
        if not self._writing and not self._pending and self._rotation is None:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._idle.append(d)
        return d

    # Compaction.

    def _maybeCompact(self) -> None:
        if (
            self._uncompacted > self._compactAt
            and self._compacting is None
            and not self._closing
            and self._broken is None
        ):
            self.compact().addErrback(lambda _: None)

    def compact(self) -> Deferred[None]:
        """
        Write a snapshot of the state and remove the files it replaces.  Appends go on
        meanwhile, into a new log.  The result fires when that is done, or fails (and
        then the journal goes on as before, with the files it had and the new log).
        """
        d: Deferred[None] = Deferred()
        if self._compacting is None:
            self._compacting = [d]
            Deferred.fromCoroutine(self._compact()).addBoth(self._compacted)
        else:
            self._compacting.append(d)
        return d

    def _compacted(self, result: None | Failure) -> None:
        waiters, self._compacting = self._compacting or [], None
        for d in waiters:
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback(None)
        self._maybeCompact()

    async def _compact(self) -> None:
        rotation: Deferred[tuple[Any, int]] = Deferred()
        self._rotation = rotation
        self._next()
        try:
            image, generation = await rotation
        except BaseException:
            self._compactAt = self._uncompacted + self.compactAfter
            log.failure("starting a new journal log for compaction failed")
            raise
        covered = self._uncompacted
        self._uncompacted = self._log.size
        name = snapshotName(generation)
        try:
            size = await self._inThread(
                writeSnapshot,
                self._files,
                name,
                generation,
                image.transactions(),
                lambda: self._closing,
            )
        except BaseException as e:
            # The logs it was to replace stay: compact again when they have grown as
            # much again.
            self._uncompacted += covered
            self._compactAt = self._uncompacted + self.compactAfter
            if isinstance(e, SnapshotCancelled):
                log.info("journal compaction given up: the registry is stopping")
            else:
                log.failure(
                    "journal compaction into {name} failed; the journal goes on with its "
                    "logs",
                    name=name,
                )
            raise
        self._compactAt = self.compactAfter
        replaced = [
            name
            for old in range(self._oldest, generation)
            for name in (logName(old), snapshotName(old))
        ]
        log.info(
            "journal compacted: {size} bytes of snapshot {name} replace {replaced}",
            size=size,
            name=name,
            replaced=replaced,
        )
        try:
            await self._inThread(self._files.remove, replaced)
        except BaseException:
            log.failure("removing the journal files a snapshot replaced failed")
            raise
        self._oldest = generation

    def _rotate(self) -> None:
        """
        Start a new generation: between two writes (so the index holds exactly what the
        logs do), copy the index, create the next log and append to it from now on.
        """
        rotation, self._rotation = self._rotation, None
        assert rotation is not None
        self._writing = True
        image = self._index.image()
        generation = self.generation + 1

        def created(newLog: LogFile) -> None:
            old, self._log = self._log, newLog
            self.generation = generation
            try:
                old.close()
            except OSError:
                log.failure("closing the journal log {path} failed", path=str(old.path))

        def done(result: None | Failure) -> None:
            self._writing = False
            if isinstance(result, Failure):
                rotation.errback(result)
            else:
                rotation.callback((image, generation))
            self._next()

        d = self._inThread(LogFile.create, self._files, logName(generation))
        d.addCallback(created).addBoth(done)

    # Stopping.

    def close(self) -> Deferred[None]:
        """
        Wait for pending appends, give up any compaction in progress, and close the log.
        """
        self._closing = True
        return Deferred.fromCoroutine(self._close())

    async def _close(self) -> None:
        if self._compacting is not None:
            d: Deferred[None] = Deferred()
            self._compacting.append(d)
            try:
                await d
            except BaseException:
                pass
        await self.whenIdle()
        self._log.close()


def _failed(error: Exception) -> Deferred[None]:
    d: Deferred[None] = Deferred()
    d.errback(error)
    return d
