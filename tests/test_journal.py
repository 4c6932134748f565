"""
The journal on real files: records and their encoding, appends with group commit, replay,
torn tails (cut off and logged) and corruption in the middle (a clear error, nothing
changed).

Threads are replaced by L{ManualThreads} where a test needs to choose what happens while
a write is in flight; L{RealThreadsTests} runs the same journal on the real reactor and
thread pool.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
from twisted.internet import reactor as globalReactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ocid.digest import Digest
from ocid.errors import StorageError
from ocid.index import RegistryIndex
from ocid.journal import (
    CorruptJournal,
    DeleteManifest,
    DeleteTag,
    Journal,
    LinkBlob,
    LinkBlobs,
    PutManifest,
    Record,
    TagAll,
    TagManifest,
    UnlinkBlob,
    encodeTransaction,
)
from ocid.journal.layout import MissingJournalFile
from ocid.journal.log import FRAME, LOG_MAGIC, frame
from ocid.journal.records import (
    DigestTable,
    NewerRecord,
    UnknownRecord,
    decodeFrame,
    decodeRecord,
    decodeTransaction,
    encodeGroup,
    encodeRecord,
)


def digest(n: int) -> Digest:
    """
    A made-up sha256 digest, different for each C{n}.
    """
    return Digest.of(str(n).encode())


@attrs.define
class ManualThreads:
    """
    A thread pool (as C{deferToThreadPool} uses one) whose work runs only when the test
    says so, in the test's thread, and a reactor whose C{callFromThread} calls at once.
    """

    queue: list[tuple[Callable[[bool, Any], None], Callable[..., Any], Any, Any]] = (
        attrs.field(factory=list)
    )

    def callInThreadWithCallback(
        self, onResult: Callable[[bool, Any], None], f: Callable[..., Any], *a: Any, **kw: Any
    ) -> None:
        self.queue.append((onResult, f, a, kw))

    def callFromThread(self, f: Callable[..., Any], *a: Any, **kw: Any) -> None:
        f(*a, **kw)

    def runOne(self) -> None:
        """
        Run the oldest queued piece of work.
        """
        onResult, f, a, kw = self.queue.pop(0)
        try:
            result = f(*a, **kw)
        except BaseException:
            onResult(False, Failure())
        else:
            onResult(True, result)

    def runAll(self) -> None:
        """
        Run queued work, and the work it queues, until none is left.
        """
        while self.queue:
            self.runOne()


def openJournal(
    directory: Path, threads: ManualThreads | None = None, **kw: Any
) -> tuple[Journal, RegistryIndex, ManualThreads]:
    """
    Open the journal in C{directory} on manual threads, into a new index.
    """
    if threads is None:
        threads = ManualThreads()
    index = RegistryIndex()
    journal = Journal.open(directory, index, threads, threads, **kw)
    return journal, index, threads


def reopen(directory: Path) -> RegistryIndex:
    """
    The state that opening the journal in C{directory} again finds (closing it after).
    """
    journal, index, threads = openJournal(directory)
    journal.close()
    threads.runAll()
    return index


def state(index: RegistryIndex) -> dict[str, Any]:
    """
    Everything C{index} holds, as plain values to compare.
    """
    return {
        name: {
            "blobs": sorted(map(str, r.blobs)),
            "manifests": {
                str(d): (attrs.astuple(e, recurse=False), e.annotations)
                for d, e in r.manifests.items()
            },
            "tags": {t: str(d) for t, d in r.tags.items()},
            "sortedTags": r.sortedTags(),
            "referrers": {
                str(s): sorted(map(str, entries)) for s, entries in r.referrers.items()
            },
        }
        for name, r in index.repositories.items()
    }


def appendAll(
    journal: Journal, threads: ManualThreads, transactions: list[list[Record]]
) -> None:
    """
    Append each transaction, one write each, and check each was acknowledged.
    """
    for transaction in transactions:
        d = journal.append(transaction)
        threads.runAll()
        assert d.called and d.result is None, d
        d.addErrback(lambda f: None)


def sampleTransactions() -> list[list[Record]]:
    """
    Some transactions with every kind of record.
    """
    return [
        [LinkBlob("library/a", digest(1)), LinkBlob("library/a", digest(2))],
        [
            PutManifest(
                "library/a",
                digest(3),
                "application/vnd.oci.image.manifest.v1+json",
                321,
                (digest(1), digest(2)),
            ),
            TagManifest("library/a", "latest", digest(3)),
            TagManifest("library/a", "v1", digest(3)),
        ],
        [
            PutManifest(
                "library/a",
                digest(4),
                "application/vnd.oci.image.manifest.v1+json",
                99,
                (digest(1),),
                subject=digest(3),
                artifactType="application/example",
                annotations={"k": "v"},
            )
        ],
        [LinkBlobs("other", (digest(5), digest(6))), UnlinkBlob("other", digest(6))],
        [TagAll("other", digest(3), ("x", "y", "z")), DeleteTag("other", "y")],
        [DeleteManifest("library/a", digest(4)), UnlinkBlob("library/a", digest(2))],
        [LinkBlobs("empty", ())],
    ]


def expectedState(transactions: list[list[Record]]) -> dict[str, Any]:
    """
    The state that applying C{transactions} to an empty index makes.
    """
    index = RegistryIndex()
    for transaction in transactions:
        index.apply(transaction)
    return state(index)


def logPath(directory: Path, generation: int = 0) -> Path:
    return directory / f"log.{generation}"


def frameOffsets(path: Path) -> list[int]:
    """
    The offset of every frame of the log at C{path} (which must be intact).
    """
    data = path.read_bytes()
    offsets = []
    offset = len(LOG_MAGIC)
    while offset < len(data):
        offsets.append(offset)
        length, _ = FRAME.unpack_from(data, offset)
        offset += FRAME.size + length
    assert offset == len(data)
    return offsets


class RecordTests(SynchronousTestCase):
    """
    Records and their JSON encoding.
    """

    def test_roundTrip(self) -> None:
        """
        Every kind of record decodes to an equal record.
        """
        for transaction in sampleTransactions():
            for record in transaction:
                decoded = decodeRecord(json.loads(json.dumps(encodeRecord(record))))
                self.assertEqual(decoded, record)
                self.assertEqual(
                    getattr(decoded, "annotations", None),
                    getattr(record, "annotations", None),
                )

    def test_defaultsLeftOut(self) -> None:
        """
        Fields at their default are not written; the encoding names the record's kind.
        """
        self.assertEqual(
            encodeRecord(TagManifest("r", "t", digest(1))),
            {"t": "tag", "repository": "r", "tag": "t", "digest": str(digest(1))},
        )
        encoded = encodeRecord(PutManifest("r", digest(1), "m", 1))
        self.assertEqual(set(encoded), {"t", "repository", "digest", "mediaType", "size"})

    def test_digestsInterned(self) -> None:
        """
        Records decoded through one table share one L{Digest} per digest.
        """
        table = DigestTable()
        payload = encodeTransaction(
            [TagManifest("r", f"t{i}", digest(1)) for i in range(3)]
        )
        records = decodeTransaction(payload, table)
        self.assertIs(records[0].digest, records[2].digest)  # type: ignore[union-attr]

    def test_unknownKind(self) -> None:
        """
        A kind this version does not know was written by a newer one.
        """
        with self.assertRaises(NewerRecord):
            decodeRecord({"t": "referrer-index", "repository": "r"})

    def test_unknownField(self) -> None:
        """
        A field this version does not know was written by a newer one.
        """
        obj = encodeRecord(TagManifest("r", "t", digest(1)))
        obj["expires"] = 12
        with self.assertRaises(NewerRecord) as e:
            decodeRecord(obj)
        self.assertIn("expires", str(e.exception))

    def test_malformed(self) -> None:
        """
        Missing fields, bad digests and non-objects are L{UnknownRecord}s.
        """
        for obj in [
            {"t": "tag", "repository": "r", "tag": "t"},
            {"t": "tag", "repository": "r", "tag": "t", "digest": "sha256:nothex"},
            {"t": "links", "repository": "r", "digests": "sha256:00"},
            {"repository": "r"},
            ["t", "tag"],
            "tag",
        ]:
            with self.assertRaises(UnknownRecord, msg=repr(obj)):
                decodeRecord(obj)  # type: ignore[arg-type]

    def test_groups(self) -> None:
        """
        A frame holds one transaction, or the group of several that one write committed.
        """
        transactions = sampleTransactions()
        payloads = [encodeTransaction(t) for t in transactions]
        self.assertEqual(decodeFrame(encodeGroup(payloads)), transactions)
        self.assertEqual(decodeFrame(encodeGroup(payloads[:1])), transactions[:1])
        self.assertEqual(decodeFrame(encodeTransaction([])), [[]])


class AppendTests(SynchronousTestCase):
    """
    Appending to the journal: durable before acknowledged, then in the index.
    """

    def setUp(self) -> None:
        self.directory = Path(self.mktemp())

    def test_newJournal(self) -> None:
        """
        Opening a new directory creates an empty log of generation 0.
        """
        journal, index, threads = openJournal(self.directory)
        self.assertEqual(index.repositories, {})
        self.assertEqual(sorted(os.listdir(self.directory)), ["log.0"])
        self.assertEqual(logPath(self.directory).read_bytes(), LOG_MAGIC)
        self.assertEqual(journal.generation, 0)

    def test_appendThenReplay(self) -> None:
        """
        Every acknowledged transaction is in the index at once, and after a restart.
        """
        transactions = sampleTransactions()
        journal, index, threads = openJournal(self.directory)
        appendAll(journal, threads, transactions)
        self.assertEqual(state(index), expectedState(transactions))
        self.assertEqual(state(reopen(self.directory)), expectedState(transactions))

    def test_indexOnlyOnceDurable(self) -> None:
        """
        A transaction reaches the index, and its append's result fires, only once the
        write and fsync of it returned.
        """
        journal, index, threads = openJournal(self.directory)
        d = journal.append([LinkBlob("r", digest(1))])
        self.assertNoResult(d)
        self.assertEqual(index.repositories, {})
        threads.runAll()
        self.assertIsNone(self.successResultOf(d))
        self.assertIn(digest(1), index.repositories["r"].blobs)

    def test_groupCommit(self) -> None:
        """
        Transactions appended while a write is in flight are written together, as one
        frame, by the next write; each append fires only once its own is durable.
        """
        journal, index, threads = openJournal(self.directory)
        first = journal.append([LinkBlob("r", digest(1))])
        later = [journal.append([LinkBlob("r", digest(n))]) for n in range(2, 6)]
        self.assertEqual(len(threads.queue), 1)
        threads.runOne()
        self.successResultOf(first)
        for d in later:
            self.assertNoResult(d)
        self.assertEqual(len(threads.queue), 1)
        threads.runOne()
        for d in later:
            self.successResultOf(d)
        self.assertEqual(len(frameOffsets(logPath(self.directory))), 2)
        self.assertEqual(
            reopen(self.directory).repositories["r"].blobs, {digest(n) for n in range(1, 6)}
        )

    def test_fsyncFailure(self) -> None:
        """
        When an fsync fails, what the disk holds is unknown: the append fails with a
        L{StorageError}, its transaction is not in the index, and later appends fail
        too.
        """
        journal, index, threads = openJournal(self.directory)
        appendAll(journal, threads, [[LinkBlob("r", digest(1))]])

        def failingFsync(fd: int) -> None:
            raise OSError(5, "Input/output error")

        journal._log.fsync = failingFsync
        d = journal.append([LinkBlob("r", digest(2))])
        threads.runAll()
        failure = self.failureResultOf(d, StorageError)
        self.assertIsInstance(failure.value.__cause__, OSError)
        self.assertEqual(index.repositories["r"].blobs, {digest(1)})
        self.failureResultOf(journal.append([LinkBlob("r", digest(3))]), StorageError)
        self.flushLoggedErrors()
        self.assertEqual(reopen(self.directory).repositories["r"].blobs, {digest(1)})

    def test_oldStyleLog(self) -> None:
        """
        The single log C{journal/log} of a data directory from before generations is
        renamed C{log.0} and replayed.
        """
        transactions = sampleTransactions()
        self.directory.mkdir()
        (self.directory / "log").write_bytes(
            LOG_MAGIC + b"".join(frame(encodeTransaction(t)) for t in transactions)
        )
        self.assertEqual(state(reopen(self.directory)), expectedState(transactions))
        self.assertEqual(sorted(os.listdir(self.directory)), ["log.0"])


class TornTailTests(SynchronousTestCase):
    """
    A crash during an append leaves a torn tail on the last log: on the next start it is
    cut off and logged, and everything acknowledged before it is there.
    """

    def setUp(self) -> None:
        self.directory = Path(self.mktemp())
        self.transactions = sampleTransactions()
        journal, _, threads = openJournal(self.directory)
        appendAll(journal, threads, self.transactions)
        journal.close()
        threads.runAll()
        self.log = logPath(self.directory)
        self.intact = self.log.read_bytes()
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def assertCut(self, torn: bytes, reason: str) -> None:
        """
        With C{torn} after the intact log, opening logs the torn tail, cuts it off,
        finds the acknowledged state, and appends after the cut.
        """
        self.log.write_bytes(self.intact + torn)
        journal, index, threads = openJournal(self.directory)
        self.assertEqual(state(index), expectedState(self.transactions))
        self.assertEqual(self.log.read_bytes(), self.intact)
        [event] = [e for e in self.events if e.get("torn") is not None]
        self.assertEqual(event["log_level"].name, "warn")
        self.assertEqual(event["path"], str(self.log))
        self.assertEqual(event["offset"], len(self.intact))
        self.assertEqual(event["torn"], len(torn))
        self.assertIn(reason, event["reason"])
        appendAll(journal, threads, [[TagManifest("library/a", "after", digest(3))]])
        journal.close()
        threads.runAll()
        self.assertEqual(
            str(reopen(self.directory).repositories["library/a"].tags["after"]),
            str(digest(3)),
        )

    def tornFrame(self) -> bytes:
        return frame(encodeTransaction([TagManifest("library/a", "torn", digest(3))]))

    def test_partialHeader(self) -> None:
        """
        Part of a frame header.
        """
        self.assertCut(self.tornFrame()[:5], "incomplete frame header")

    def test_partialPayload(self) -> None:
        """
        A frame whose payload was cut short.
        """
        self.assertCut(self.tornFrame()[:-7], "runs past the end")

    def test_badChecksum(self) -> None:
        """
        A last frame whose payload does not match its checksum (only some of its
        pages reached the disk).
        """
        torn = bytearray(self.tornFrame())
        torn[20] ^= 0x40
        self.assertCut(bytes(torn), "checksum mismatch")

    def test_zeroFilled(self) -> None:
        """
        Zero bytes (the file grew, its data never reached the disk).
        """
        self.assertCut(b"\0" * 8192, "")

    def test_garbage(self) -> None:
        """
        Bytes that are no frame, even with a C{[} in them.
        """
        self.assertCut(b"\xff\x01[[{garbage]" * 50, "")

    def test_tornGroup(self) -> None:
        """
        A group commit is one frame: torn, none of its transactions is replayed.
        """
        group = frame(
            encodeGroup(
                [
                    encodeTransaction([TagManifest("library/a", f"g{n}", digest(3))])
                    for n in range(20)
                ]
            )
        )
        self.assertCut(group[: len(group) // 2], "runs past the end")

    def test_tornFileHeader(self) -> None:
        """
        A log torn while being created (a crash in the middle of its header) is
        started afresh.
        """
        self.log.write_bytes(LOG_MAGIC[:3])
        journal, index, threads = openJournal(self.directory)
        self.assertEqual(index.repositories, {})
        self.assertEqual(self.log.read_bytes(), LOG_MAGIC)
        self.assertTrue([e for e in self.events if e.get("torn") == 3])


class CorruptionTests(SynchronousTestCase):
    """
    Damage that a crash does not explain stops the start with an error naming the file,
    the offset and the repair, and changes nothing.
    """

    def setUp(self) -> None:
        self.directory = Path(self.mktemp())
        self.transactions = sampleTransactions()
        journal, _, threads = openJournal(self.directory)
        appendAll(journal, threads, self.transactions)
        journal.close()
        threads.runAll()
        self.log = logPath(self.directory)
        self.offsets = frameOffsets(self.log)

    def damage(self, offset: int, data: bytes) -> None:
        content = bytearray(self.log.read_bytes())
        content[offset : offset + len(data)] = data
        self.log.write_bytes(bytes(content))

    def assertCorrupt(self, offset: int, reason: str) -> CorruptJournal:
        """
        Opening fails with L{CorruptJournal} at C{offset}, whose message says how to
        truncate the file there; no file was changed.
        """
        before = {name: (self.directory / name).read_bytes() for name in os.listdir(self.directory)}
        with self.assertRaises(CorruptJournal) as e:
            openJournal(self.directory)
        error = e.exception
        self.assertEqual((error.path, error.offset), (self.log, offset))
        self.assertIn(reason, error.reason)
        message = str(error)
        self.assertIn(f"corrupt at byte offset {offset}", message)
        self.assertIn(str(self.log), message)
        after = {name: (self.directory / name).read_bytes() for name in os.listdir(self.directory)}
        self.assertEqual(after, before)
        return error

    def test_badChecksumInTheMiddle(self) -> None:
        """
        A frame with a bad checksum followed by intact frames.
        """
        self.damage(self.offsets[2] + FRAME.size + 3, b"#")
        error = self.assertCorrupt(self.offsets[2], "checksum mismatch")
        self.assertIn(f"truncate -s {self.offsets[2]} {self.log}", str(error))

    def test_badLengthInTheMiddle(self) -> None:
        """
        A frame whose length was damaged, followed by intact frames.
        """
        self.damage(self.offsets[1], b"\x7f")
        self.assertCorrupt(self.offsets[1], "too large")

    def test_undecodable(self) -> None:
        """
        An intact frame whose payload is not a transaction.
        """
        self.log.write_bytes(self.log.read_bytes() + frame(b"[{]"))
        self.assertCorrupt(len(self.log.read_bytes()) - 11, "undecodable")

    def test_newerRecord(self) -> None:
        """
        A record of a kind this version does not know: the error says to run the
        newer version that wrote it.
        """
        offset = len(self.log.read_bytes())
        self.log.write_bytes(
            self.log.read_bytes() + frame(b'[{"t":"gc-mark","repository":"r"}]')
        )
        error = self.assertCorrupt(offset, "unknown kind")
        self.assertIn("newer version", str(error))

    def test_badHeader(self) -> None:
        """
        A log that does not start with the magic bytes.
        """
        self.damage(0, b"XX")
        self.assertCorrupt(0, "not a journal file")

    def test_repairAsAdvised(self) -> None:
        """
        Truncating the log where the error says starts the registry with every
        transaction before that point.
        """
        self.damage(self.offsets[3] + FRAME.size + 1, b"#")
        error = self.assertCorrupt(self.offsets[3], "checksum mismatch")
        os.truncate(error.path, error.offset)
        self.assertEqual(state(reopen(self.directory)), expectedState(self.transactions[:3]))

    def test_tornTailOfAnEarlierLog(self) -> None:
        """
        Only the last log can have a torn tail: damage at the end of a log that another
        follows is corruption.
        """
        shutil.copy(self.log, logPath(self.directory, 1))
        end = len(self.log.read_bytes())
        self.log.write_bytes(self.log.read_bytes() + b"\0" * 100)
        self.assertCorrupt(end, "empty frame")

    def test_missingSnapshot(self) -> None:
        """
        Logs of a generation after 0 without the snapshot they follow stop the start,
        naming the snapshot.
        """
        os.rename(self.log, logPath(self.directory, 5))
        with self.assertRaises(MissingJournalFile) as e:
            openJournal(self.directory)
        self.assertEqual(e.exception.path, self.directory / "snapshot.5")

    def test_missingLog(self) -> None:
        """
        A missing log between others stops the start, naming it.
        """
        shutil.copy(self.log, logPath(self.directory, 2))
        with self.assertRaises(MissingJournalFile) as e:
            openJournal(self.directory)
        self.assertEqual(e.exception.path, logPath(self.directory, 1))
        self.assertIn("is missing", str(e.exception))


class RealThreadsTests(TestCase):
    """
    The journal on the real reactor and its thread pool.
    """

    @inlineCallbacks
    def test_concurrentAppends(self) -> Any:
        """
        Many appends at once are all acknowledged, all in the index, and all replayed.
        """
        directory = Path(self.mktemp())
        index = RegistryIndex()
        journal = Journal.open(directory, index, globalReactor)
        transactions: list[list[Record]] = [
            [TagManifest("r", f"t{n}", digest(n % 7))] for n in range(500)
        ]
        results: list[Deferred[None]] = [journal.append(t) for t in transactions]
        yield gatherResults(results)
        yield journal.close()
        self.assertEqual(len(index.repositories["r"].tags), 500)
        self.assertEqual(state(reopen(directory)), state(index))
        self.assertLess(len(frameOffsets(logPath(directory))), 500)


class IndexTests(SynchronousTestCase):
    """
    The index that replaying builds.
    """

    def test_deleteManifestAfterRetagging(self) -> None:
        """
        Deleting a manifest deletes exactly the tags pointing at it then, however they
        were moved before and after earlier deletions.
        """
        index = RegistryIndex()
        index.apply([TagAll("r", digest(1), ("a", "b", "c")), TagManifest("r", "d", digest(2))])
        index.apply([DeleteManifest("r", digest(3))])  # Nothing points at it.
        index.apply([TagManifest("r", "a", digest(2)), TagAll("r", digest(3), ("b", "e"))])
        index.apply([DeleteTag("r", "c"), TagManifest("r", "c", digest(2))])
        repository = index.repositories["r"]
        self.assertEqual(repository.tagsPointingAt(digest(2)), {"a", "c", "d"})
        index.apply([DeleteManifest("r", digest(1))])
        self.assertEqual(sorted(repository.tags), ["a", "b", "c", "d", "e"])
        index.apply([DeleteManifest("r", digest(2))])
        self.assertEqual(repository.tags, {"b": digest(3), "e": digest(3)})
        self.assertEqual(repository.sortedTags(), ["b", "e"])

    def test_deletedManifestUnlinked(self) -> None:
        """
        A deleted manifest that an index listed is no longer linked as content.
        """
        index = RegistryIndex()
        index.apply([PutManifest("r", digest(1), "m", 1)])
        index.apply([PutManifest("r", digest(2), "i", 1, (digest(1),))])
        self.assertTrue(index.repositories["r"].hasContent(digest(1)))
        index.apply([DeleteManifest("r", digest(1))])
        self.assertFalse(index.repositories["r"].hasContent(digest(1)))
