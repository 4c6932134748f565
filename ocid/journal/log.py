"""
Framed, checksummed files: the journal's logs and snapshots.

Format (version 1)::

    header:  8 magic bytes (b"OCIDJNL1" for a log, b"OCIDSNP1" for a snapshot)
    frame:   length (uint32, big-endian) | crc32 of payload (uint32, big-endian) | payload

A log frame's payload is one transaction, or the group of transactions that one group
commit wrote (see L{ocid.journal.records.decodeFrame}); each is a JSON array, so every
payload starts with C{[}.

Reading a log, a frame that runs past the end of the file, or a damaged frame followed by
nothing intact (zero bytes, garbage, a partial frame), is a torn tail left by a crash
during an append that was never acknowledged: the caller logs it and cuts it off.  A
damaged frame followed by an intact one is corruption in the middle: L{CorruptJournal}
names the offset and how to repair.  (Each group commit is one frame, written only after
the previous one was fsynced, so after a power failure only the last frame can be torn.)
"""

from __future__ import annotations

import mmap
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import attrs

from ocid.storage.durable import DurableDirectory

LOG_MAGIC = b"OCIDJNL1"
SNAPSHOT_MAGIC = b"OCIDSNP1"
#: The old name of L{LOG_MAGIC}.
MAGIC = LOG_MAGIC
HEADER_SIZE = len(LOG_MAGIC)
FRAME = struct.Struct(">II")
#: No frame is anywhere near this large; a length above it marks a damaged frame.
MAX_FRAME = 64 * 1024 * 1024
#: How much damaged tail is searched for intact frames before calling it corruption.
MAX_TORN_TAIL = 16 * 1024 * 1024


class CorruptJournal(Exception):
    """
    A journal file is damaged where a crash cannot explain it; starting would silently
    lose state, so the registry does not start.

    @ivar path: the damaged file.
    @ivar offset: where the damage starts, in bytes from the start of the file.
    @ivar reason: what is wrong there.
    @ivar repair: what the operator can do about it.
    """

    def __init__(self, path: Path, offset: int, reason: str, repair: str | None = None) -> None:
        self.path = path
        self.offset = offset
        self.reason = reason
        if repair is None:
            repair = truncateAdvice(path, offset)
        self.repair = repair
        super().__init__(
            f"journal file {path} is corrupt at byte offset {offset}: {reason}. "
            f"Nothing was changed. {repair}"
        )


def truncateAdvice(path: Path, offset: int) -> str:
    """
    How to start anyway from a file damaged at C{offset}.
    """
    return (
        f"To start anyway, keep a copy of the file and truncate it to {offset} bytes "
        f"(losing the changes recorded from that point on), for example "
        f"`cp {path} {path}.bak && truncate -s {offset} {path}`."
    )


def frame(payload: bytes) -> bytes:
    """
    Frame C{payload} (never empty) for a journal file.
    """
    return FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def _frameAt(data: bytes | mmap.mmap, offset: int) -> tuple[bytes | None, str]:
    """
    The payload of the intact frame at C{offset}, or C{None} and what is wrong with it.
    """
    if len(data) - offset < FRAME.size:
        return None, "incomplete frame header"
    length, checksum = FRAME.unpack_from(data, offset)
    start = offset + FRAME.size
    if length == 0:
        return None, "empty frame (zero bytes?)"
    if length > MAX_FRAME:
        return None, f"frame length {length} is too large"
    if start + length > len(data):
        return None, "frame runs past the end of the file"
    payload = data[start : start + length]
    if zlib.crc32(payload) != checksum:
        return None, "checksum mismatch"
    return payload, ""


def _intactFrameAfter(data: bytes | mmap.mmap, offset: int) -> bool:
    """
    Whether an intact frame starts anywhere after the damaged one at C{offset}.  A torn
    tail has none; corruption in the middle of a log does.  A damaged region too large to
    search (but not all zeros, say) is treated as corruption, so nothing is ever dropped
    silently.

    Every payload starts with C{[}, so only the positions 8 bytes before one are tried.
    """
    position = data.find(b"[", offset + 1 + FRAME.size)
    if position != -1 and len(data) - offset > MAX_TORN_TAIL:
        return True
    while position != -1:
        payload, _ = _frameAt(data, position - FRAME.size)
        if payload:
            return True
        position = data.find(b"[", position + 1)
    return False


@attrs.define
class FramedFile:
    """
    The frames of one log or snapshot file, read through a memory map.

    Iterate L{frames}; then L{validLength} is the offset just past the last intact frame
    and L{tornReason} says what was wrong with what followed (C{None} if nothing did).

    @ivar tornTail: whether damage followed by nothing intact is a torn tail (the last
        log) rather than corruption (a log with another after it, or a snapshot).
    """

    path: Path
    magic: bytes
    tornTail: bool
    #: Makes the exception for damage: C{(path, offset, reason)}.
    corrupt: Callable[[Path, int, str], CorruptJournal] = CorruptJournal
    validLength: int = 0
    size: int = 0
    tornReason: str | None = None

    def frames(self) -> Iterator[tuple[int, bytes]]:
        """
        Yield C{(offset, payload)} for each intact frame.

        @raise CorruptJournal: for a bad header, or damage that is not a torn tail.
        """
        with open(self.path, "rb") as f:
            self.size = size = os.fstat(f.fileno()).st_size
            if size == 0:
                data: bytes | mmap.mmap = b""
            else:
                data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            try:
                yield from self._frames(data)
            finally:
                if isinstance(data, mmap.mmap):
                    data.close()

    def _frames(self, data: bytes | mmap.mmap) -> Iterator[tuple[int, bytes]]:
        header = data[:HEADER_SIZE]
        if header != self.magic:
            if self.tornTail and self.magic.startswith(header):
                # Torn while being created.
                self.tornReason = "incomplete file header"
                return
            raise self.corrupt(
                self.path, 0, f"not a journal file (its header is not {self.magic!r})"
            )
        offset = self.validLength = HEADER_SIZE
        end = len(data)
        unpack = FRAME.unpack_from
        crc32 = zlib.crc32
        while offset < end:
            # The common case inline; _frameAt explains any damage.
            if end - offset >= FRAME.size:
                length, checksum = unpack(data, offset)
                start = offset + FRAME.size
                stop = start + length
                if stop <= end and 0 < length <= MAX_FRAME:
                    payload = data[start:stop]
                    if crc32(payload) == checksum:
                        yield offset, payload
                        offset = self.validLength = stop
                        continue
            _, reason = _frameAt(data, offset)
            if not self.tornTail:
                raise self.corrupt(self.path, offset, reason)
            if _intactFrameAfter(data, offset):
                raise self.corrupt(self.path, offset, f"{reason}, followed by intact frames")
            self.tornReason = reason
            return


@attrs.define
class LogFile:
    """
    A log open for appending.  Its methods block: call them from one thread at a time.

    @ivar size: the length of the log's intact content, where the next frame goes.
    @ivar fsync: called in place of C{os.fsync} (a test hook).
    """

    path: Path
    _file: BinaryIO
    size: int
    fsync: Callable[[int], None] = os.fsync

    @classmethod
    def create(cls, directory: DurableDirectory, name: str) -> LogFile:
        """
        Create the empty log C{name} in C{directory} durably (replacing any file there).
        """
        directory.writeAtomically(name, [LOG_MAGIC])
        return cls.open(directory.path / name, HEADER_SIZE)

    @classmethod
    def open(cls, path: Path, size: int) -> LogFile:
        """
        Open the log at C{path}, whose intact content is C{size} bytes long, for appending.
        """
        f = open(path, "ab", buffering=0)
        return cls(path, f, size)

    def write(self, data: bytes) -> None:
        """
        Append C{data} and fsync it.

        @raise OSError: if the write failed; the log is cut back to where it was, so the
            next write does not follow a torn frame.
        @raise UnrecoverableWrite: if the fsync failed, or cutting back did: what is on
            disk is unknown, so no further write can be promised durable.
        """
        fd = self._file.fileno()
        start = self.size
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
        except OSError:
            try:
                os.ftruncate(fd, start)
            except OSError as e:
                raise UnrecoverableWrite(e) from e
            raise
        try:
            self.fsync(fd)
        except OSError as e:
            # After a failed fsync the kernel may have dropped the dirty pages.
            try:
                os.ftruncate(fd, start)
            except OSError:
                pass
            raise UnrecoverableWrite(e) from e
        self.size = start + len(data)

    def close(self) -> None:
        """
        Close the file.
        """
        self._file.close()


class UnrecoverableWrite(Exception):
    """
    A log write failed in a way that leaves the file's durable state unknown.

    @ivar error: the L{OSError} behind it.
    """

    def __init__(self, error: OSError) -> None:
        self.error = error
        super().__init__(str(error))
