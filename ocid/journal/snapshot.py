"""
Journal snapshots: the whole state of the index at one moment, written as records.

A snapshot file is framed like a log (see L{ocid.journal.log}) with the magic
C{b"OCIDSNP1"}::

    frame 0:      {"snapshot": 1, "generation": N}       (a JSON object: the format)
    frames 1..k:  transactions (JSON arrays of records) rebuilding the state
    frame k+1:    {"end": k}                             (nothing is missing)

The records are the journal's own (L{ocid.journal.records}), mostly the bulk ones
(L{LinkBlobs}, L{TagAll}), so a repository's million tags load as a few large JSON
arrays.  A snapshot is written to a temporary file, fsynced and renamed into place, so it
is complete or absent: any damage is corruption, never a torn tail.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ocid.journal.log import SNAPSHOT_MAGIC, CorruptJournal, FramedFile, frame
from ocid.journal.records import (
    DigestTable,
    NewerRecord,
    Record,
    UnknownRecord,
    decodeFrame,
    encodeTransaction,
)
from ocid.storage.durable import DurableDirectory

#: The version of the snapshot format written (and the newest one read).
SNAPSHOT_FORMAT = 1


class CorruptSnapshot(CorruptJournal):
    """
    A snapshot file is damaged or unreadable.
    """

    def __init__(self, path: Path, offset: int, reason: str) -> None:
        super().__init__(
            path,
            offset,
            reason,
            "A snapshot holds the whole registry state and cannot be partly used: restore "
            f"the directory {path.parent} from a backup (the blob files are not in it).",
        )


class SnapshotCancelled(Exception):
    """
    Writing a snapshot was given up (the registry is stopping); nothing was replaced.
    """


def writeSnapshot(
    directory: DurableDirectory,
    name: str,
    generation: int,
    transactions: Iterable[list[Record]],
    cancelled: Callable[[], bool] = lambda: False,
) -> int:
    """
    Write the snapshot C{name} of generation C{generation} into C{directory}, atomically
    and durably, holding C{transactions}.  Blocking: call it in a thread.

    @param cancelled: asked between frames; once it answers C{True}, the write stops
        with L{SnapshotCancelled} (leaving at most a temporary file).
    @return: the size of the snapshot in bytes.
    """
    size = 0

    def chunks() -> Iterator[bytes]:
        nonlocal size
        count = 0
        pending: list[bytes] = [
            SNAPSHOT_MAGIC,
            frame(_object({"snapshot": SNAPSHOT_FORMAT, "generation": generation})),
        ]
        buffered = 0
        for transaction in transactions:
            if cancelled():
                raise SnapshotCancelled()
            chunk = frame(encodeTransaction(transaction))
            pending.append(chunk)
            buffered += len(chunk)
            count += 1
            if buffered >= 1024 * 1024:
                data = b"".join(pending)
                size += len(data)
                yield data
                pending, buffered = [], 0
        pending.append(frame(_object({"end": count})))
        data = b"".join(pending)
        size += len(data)
        yield data

    directory.writeAtomically(name, chunks())
    return size


def _object(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("ascii")


def readSnapshot(
    path: Path, generation: int, digests: DigestTable | None = None
) -> Iterator[list[Record]]:
    """
    The transactions of the snapshot at C{path}, which should be of C{generation}.

    @raise CorruptSnapshot: if it is damaged, incomplete, of another generation, or of a
        newer format.
    """
    if digests is None:
        digests = DigestTable()
    framed = FramedFile(path, SNAPSHOT_MAGIC, tornTail=False, corrupt=CorruptSnapshot)
    frames = framed.frames()
    first = next(frames, None)
    if first is None:
        raise CorruptSnapshot(path, framed.validLength, "no format frame")
    offset, payload = first
    header = _decodeObject(path, offset, payload)
    version = header.get("snapshot")
    if not isinstance(version, int) or version < 1:
        raise CorruptSnapshot(path, offset, f"not a snapshot format frame: {header!r:.200}")
    if version > SNAPSHOT_FORMAT:
        raise CorruptSnapshot(
            path,
            offset,
            f"snapshot format {version} was written by a newer version of ocid "
            f"(this one reads format {SNAPSHOT_FORMAT}); run that version",
        )
    if header.get("generation") != generation:
        raise CorruptSnapshot(
            path,
            offset,
            f"it is of generation {header.get('generation')!r}, its name says {generation}",
        )
    count = 0
    for offset, payload in frames:
        if payload.startswith(b"{"):
            trailer = _decodeObject(path, offset, payload)
            if trailer.get("end") != count:
                raise CorruptSnapshot(
                    path, offset, f"its end frame {trailer!r:.100} does not match {count}"
                )
            if offset + 8 + len(payload) != framed.size:
                raise CorruptSnapshot(
                    path, offset + 8 + len(payload), "data follows its end frame"
                )
            return
        try:
            yield from decodeFrame(payload, digests)
        except NewerRecord as e:
            raise CorruptSnapshot(
                path, offset, f"{e}: it was written by a newer version of ocid"
            ) from e
        except UnknownRecord as e:
            raise CorruptSnapshot(path, offset, f"undecodable transaction: {e}") from e
        count += 1
    raise CorruptSnapshot(path, framed.validLength, "it ends without its end frame")


def _decodeObject(path: Path, offset: int, payload: bytes) -> dict[str, Any]:
    try:
        value = json.loads(payload)
    except ValueError as e:
        raise CorruptSnapshot(path, offset, f"undecodable frame: {e}") from e
    if not isinstance(value, dict):
        raise CorruptSnapshot(path, offset, "a frame that should be an object is not")
    return value
