"""
Snapshots and compaction, on real files: the snapshot format, compaction while appends go
on, a crash at every step of a compaction, and the generated many-tags data directory.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from twisted.internet import reactor as globalReactor
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ocid.digest import Digest
from ocid.index import RegistryIndex
from ocid.journal import Journal, LinkBlob, PutManifest, Record, TagManifest
from ocid.journal.generate import smallImage, writeManyTags
from ocid.journal.journal import replay
from ocid.journal.log import FRAME, SNAPSHOT_MAGIC, frame
from ocid.journal.snapshot import CorruptSnapshot, readSnapshot, writeSnapshot
from ocid.storage.blobs import BlobStore
from ocid.storage.durable import DurableDirectory
from tests.test_journal import (
    ManualThreads,
    appendAll,
    digest,
    expectedState,
    openJournal,
    reopen,
    sampleTransactions,
    state,
)


def snapshotState(path: Path, generation: int) -> dict[str, Any]:
    """
    The state the snapshot at C{path} holds.
    """
    index = RegistryIndex()
    for transaction in readSnapshot(path, generation):
        index.apply(transaction)
    return state(index)


class SnapshotFormatTests(SynchronousTestCase):
    """
    A snapshot holds the whole state of an index, checked and versioned.
    """

    def setUp(self) -> None:
        self.directory = Path(self.mktemp())
        self.directory.mkdir()
        self.index = RegistryIndex()
        for transaction in sampleTransactions():
            self.index.apply(transaction)
        self.path = self.directory / "snapshot.3"
        writeSnapshot(
            DurableDirectory(self.directory),
            "snapshot.3",
            3,
            self.index.image().transactions(),
        )

    def test_roundTrip(self) -> None:
        """
        Loading a snapshot rebuilds exactly the state it was written from: manifests
        with their annotations and subjects (so referrers), blobs (also a referenced blob
        unlinked since), tags, and repositories left empty.
        """
        self.assertEqual(snapshotState(self.path, 3), state(self.index))
        self.assertIn("empty", snapshotState(self.path, 3))

    def test_manyItems(self) -> None:
        """
        Repositories with more tags and blobs than one record holds round-trip too.
        """
        index = RegistryIndex()
        index.apply([LinkBlob("big", digest(n)) for n in range(1200)])
        index.apply([TagManifest("big", f"t{n}", digest(n % 3)) for n in range(2500)])
        import ocid.index

        self.patch(ocid.index, "DUMP_ITEMS", 1000)
        self.patch(ocid.index, "DUMP_RECORDS", 10)
        writeSnapshot(
            DurableDirectory(self.directory), "snapshot.4", 4, index.image().transactions()
        )
        self.assertEqual(snapshotState(self.directory / "snapshot.4", 4), state(index))

    def test_imageIsACopy(self) -> None:
        """
        Changes after the image was taken are not in it.
        """
        image = self.index.image()
        self.index.apply([TagManifest("other", "new", digest(9)), LinkBlob("new", digest(9))])
        writeSnapshot(DurableDirectory(self.directory), "snapshot.5", 5, image.transactions())
        self.assertEqual(
            snapshotState(self.directory / "snapshot.5", 5), expectedState(sampleTransactions())
        )

    def assertCorrupt(self, reason: str) -> CorruptSnapshot:
        with self.assertRaises(CorruptSnapshot) as e:
            list(readSnapshot(self.path, 3))
        self.assertIn(reason, str(e.exception))
        self.assertIn("restore", str(e.exception))
        return e.exception

    def test_anyDamagedByte(self) -> None:
        """
        A damaged byte anywhere in a snapshot is found.
        """
        content = self.path.read_bytes()
        for offset in range(0, len(content), 7):
            damaged = bytearray(content)
            damaged[offset] ^= 0x01
            self.path.write_bytes(bytes(damaged))
            with self.assertRaises(CorruptSnapshot, msg=f"offset {offset}"):
                list(readSnapshot(self.path, 3))

    def test_truncated(self) -> None:
        """
        A snapshot cut after a frame boundary lacks its end frame.
        """
        content = self.path.read_bytes()
        length, _ = FRAME.unpack_from(content, len(SNAPSHOT_MAGIC))
        self.path.write_bytes(content[: len(SNAPSHOT_MAGIC) + FRAME.size + length])
        self.assertCorrupt("without its end frame")

    def test_otherGeneration(self) -> None:
        """
        A snapshot renamed to another generation is refused.
        """
        with self.assertRaises(CorruptSnapshot) as e:
            list(readSnapshot(self.path, 4))
        self.assertIn("generation 3", str(e.exception))

    def test_newerFormat(self) -> None:
        """
        A snapshot of a newer format says which version to run.
        """
        self.path.write_bytes(SNAPSHOT_MAGIC + frame(b'{"snapshot":2,"generation":3}'))
        self.assertCorrupt("newer version")

    def test_corruptSnapshotStopsTheStart(self) -> None:
        """
        A damaged snapshot stops opening the journal, changing nothing.
        """
        (self.directory / "log.3").write_bytes(b"OCIDJNL1")
        content = bytearray(self.path.read_bytes())
        content[-3] ^= 0xFF
        self.path.write_bytes(bytes(content))
        with self.assertRaises(CorruptSnapshot):
            openJournal(self.directory)
        self.assertEqual(self.path.read_bytes(), bytes(content))


class CompactionTests(SynchronousTestCase):
    """
    Compaction: a snapshot of the state replaces the logs, while appends go on.
    """

    def setUp(self) -> None:
        self.directory = Path(self.mktemp())
        self.transactions = sampleTransactions()
        self.journal, self.index, self.threads = openJournal(self.directory)
        appendAll(self.journal, self.threads, self.transactions)

    def test_compact(self) -> None:
        """
        After compaction the directory holds the snapshot and the new, empty log of the
        next generation; opening it finds the same state.
        """
        d = self.journal.compact()
        self.threads.runAll()
        self.successResultOf(d)
        self.assertEqual(sorted(os.listdir(self.directory)), ["log.1", "snapshot.1"])
        self.assertEqual(self.journal.generation, 1)
        self.assertEqual(state(reopen(self.directory)), expectedState(self.transactions))

    def test_appendsDuringCompaction(self) -> None:
        """
        Appends made while a compaction waits for a write in flight, while it starts the
        new log, and while it writes the snapshot, all land in the new log: none is
        lost, and the snapshot holds the state at the moment the log changed.
        """
        more: list[list[Record]] = [
            [TagManifest("library/a", f"during{n}", digest(3))] for n in range(6)
        ]
        first = self.journal.append(more[0])  # A write in flight...
        compaction = self.journal.compact()  # ...so the new log waits for it.
        second = self.journal.append(more[1])
        self.threads.runOne()  # The write.
        self.successResultOf(first)
        self.assertNoResult(second)  # Waits for the new log.
        third = self.journal.append(more[2])
        self.threads.runOne()  # The new log is created.
        self.assertEqual(self.journal.generation, 1)
        self.threads.runOne()  # The snapshot is written...
        self.assertEqual(
            snapshotState(self.directory / "snapshot.1", 1),
            expectedState(self.transactions + more[:1]),
        )
        fourth = self.journal.append(more[3])  # ...(while the old files are not gone)
        self.threads.runAll()
        for d in (second, third, fourth, compaction):
            self.successResultOf(d)
        appendAll(self.journal, self.threads, more[4:])
        self.assertEqual(sorted(os.listdir(self.directory)), ["log.1", "snapshot.1"])
        expected = expectedState(self.transactions + more)
        self.assertEqual(state(self.index), expected)
        self.assertEqual(state(reopen(self.directory)), expected)

    def test_compactAgain(self) -> None:
        """
        Every compaction starts a generation and removes the files of the previous one.
        """
        for n in range(3):
            d = self.journal.compact()
            appendAll(self.journal, self.threads, [[TagManifest("x", f"t{n}", digest(n))]])
            self.threads.runAll()
            self.successResultOf(d)
        self.assertEqual(sorted(os.listdir(self.directory)), ["log.3", "snapshot.3"])
        self.assertEqual(
            sorted(reopen(self.directory).repositories["x"].tags), ["t0", "t1", "t2"]
        )

    def test_automatic(self) -> None:
        """
        Once the logs outgrow C{compactAfter}, the journal compacts by itself.
        """
        self.journal.compactAfter = 4096
        self.journal._compactAt = 4096
        appendAll(
            self.journal,
            self.threads,
            [[TagManifest("auto", f"tag{n}", digest(n))] for n in range(100)],
        )
        self.threads.runAll()
        self.assertGreaterEqual(self.journal.generation, 2)
        files = os.listdir(self.directory)
        self.assertEqual(len(files), 2, files)
        self.assertEqual(len(reopen(self.directory).repositories["auto"].tags), 100)

    def test_atStartup(self) -> None:
        """
        Opening a journal whose logs exceed C{compactAfter} compacts it.
        """
        self.journal.close()
        self.threads.runAll()
        journal, index, threads = openJournal(self.directory, compactAfter=100)
        threads.runAll()
        self.assertEqual(sorted(os.listdir(self.directory)), ["log.1", "snapshot.1"])
        self.assertEqual(state(index), expectedState(self.transactions))

    def test_failure(self) -> None:
        """
        A compaction that fails (the disk is full, say) is logged; the journal goes on
        with its files and a new log, appends work, nothing is lost, and it does not
        try again before the logs have grown by C{compactAfter} again.
        """
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

        def full(operation: str, name: str) -> None:
            if name.startswith("snapshot") and operation == "write":
                raise OSError(28, "No space left on device")

        self.journal._files = DurableDirectory(self.directory, full)
        self.journal.compactAfter = self.journal._compactAt = 1000
        d = self.journal.compact()
        self.threads.runAll()
        self.failureResultOf(d, OSError)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.assertTrue([e for e in events if "compaction" in e.get("log_format", "")])
        self.assertEqual(
            sorted(os.listdir(self.directory)), ["log.0", "log.1", "snapshot.1.tmp"]
        )
        appendAll(self.journal, self.threads, [[TagManifest("x", "after", digest(1))]])
        self.assertEqual(self.journal.generation, 1)  # No new attempt yet.
        expected = expectedState([*self.transactions, [TagManifest("x", "after", digest(1))]])
        self.assertEqual(state(reopen(self.directory)), expected)
        self.assertEqual(sorted(os.listdir(self.directory)), ["log.0", "log.1"])

    def test_closeGivesUp(self) -> None:
        """
        Closing the journal during a compaction gives the compaction up; the files
        still hold everything.
        """
        d = self.journal.compact()
        self.threads.runOne()  # The new log.
        closed = self.journal.close()
        self.threads.runAll()
        self.successResultOf(closed)
        self.failureResultOf(d)
        self.assertEqual(state(reopen(self.directory)), expectedState(self.transactions))


class SimulatedCrash(Exception):
    """
    The process died here.
    """


class CrashTests(SynchronousTestCase):
    """
    A crash at any step of a compaction (and of the recovery after it) loses nothing
    that was acknowledged.
    """

    def setUp(self) -> None:
        self.base = Path(self.mktemp())
        self.before = sampleTransactions()
        journal, _, threads = openJournal(self.base / "journal")
        appendAll(journal, threads, self.before[:4])
        d = journal.compact()  # Generation 1 has a snapshot and a log.
        threads.runAll()
        self.successResultOf(d)
        appendAll(journal, threads, self.before[4:])
        journal.close()
        threads.runAll()

    def crashingFiles(self, directory: Path, at: int) -> tuple[DurableDirectory, list[str]]:
        """
        Files in C{directory} whose C{at}th change, and every one after, crashes.
        """
        steps: list[str] = []

        def step(operation: str, name: str) -> None:
            steps.append(f"{operation} {name}")
            if len(steps) >= at:
                raise SimulatedCrash(steps[-1])

        return DurableDirectory(directory, step), steps

    def compactWithCrash(self, at: int) -> tuple[Path, list[str], int]:
        """
        On a copy of the journal, append two transactions, compact, and append two more
        while the compaction goes on, crashing at the C{at}th change of files.

        @return: the copy, the changes up to the crash, how many appends were
            acknowledged.
        """
        directory = Path(self.mktemp())
        shutil.copytree(self.base / "journal", directory)
        files, steps = self.crashingFiles(directory, at)
        threads = ManualThreads()
        journal = Journal.open(directory, RegistryIndex(), threads, threads, files=files)
        appends = [journal.append(t) for t in self.more[:2]]
        journal.compact().addErrback(lambda _: None)
        for transaction in self.more[2:]:
            threads.runOne()
            appends.append(journal.append(transaction))
        threads.runAll()
        journal._log.close()
        acknowledged = 0
        for d in appends:
            if d.called and d.result is None:
                acknowledged += 1
            d.addErrback(lambda _: None)
        self.flushLoggedErrors(SimulatedCrash)
        return directory, steps, acknowledged

    def test_crashAtEveryStep(self) -> None:
        """
        Crash at the first change of files of a compaction with appends going on, then
        at the second, and so on until it completes: every time, the journal opened
        afterwards holds every acknowledged transaction (and those in flight at most),
        and takes appends.
        """
        self.more: list[list[Record]] = [
            [TagManifest("library/a", f"m{n}", digest(3))] for n in range(4)
        ]
        candidates = [
            expectedState(self.before + self.more[:n]) for n in range(len(self.more) + 1)
        ]
        crashes = []
        at = 1
        while True:
            directory, steps, acknowledged = self.compactWithCrash(at)
            found = state(reopen(directory))
            self.assertIn(found, candidates, f"crash at {steps[-1:]}")
            self.assertLessEqual(acknowledged, candidates.index(found))
            journal, _, threads = openJournal(directory)
            appendAll(journal, threads, [[TagManifest("x", "after", digest(1))]])
            journal.close()
            threads.runAll()
            self.assertIn("after", reopen(directory).repositories["x"].tags)
            if len(steps) < at:
                # No crash: the compaction completed.
                self.assertEqual(acknowledged, len(self.more))
                break
            crashes.append(steps[-1])
            at += 1
        self.assertEqual(
            crashes,
            [
                *["create log.2.tmp", "write log.2.tmp", "fsync log.2.tmp", "rename log.2"],
                "fsyncdir .",
                *["create snapshot.2.tmp", "write snapshot.2.tmp", "fsync snapshot.2.tmp"],
                *["rename snapshot.2", "fsyncdir ."],
                *["remove log.1", "remove snapshot.1", "fsyncdir ."],
            ],
        )

    def test_crashDuringRecovery(self) -> None:
        """
        A crash while opening repairs the directory (cuts a torn tail, removes what a
        compaction left) leaves it for the next start to repair.
        """
        damaged = self.base / "journal"
        (damaged / "snapshot.2.tmp").write_bytes(b"partial")
        (damaged / "log.0").write_bytes(b"OCIDJNL1")
        log = damaged / "log.1"
        log.write_bytes(log.read_bytes() + b"\0\0\0")
        crashes = []
        at = 1
        while True:
            directory = Path(self.mktemp())
            shutil.copytree(damaged, directory)
            files, steps = self.crashingFiles(directory, at)
            try:
                openJournal(directory, files=files)
            except SimulatedCrash:
                crashes.append(steps[-1])
                self.assertEqual(state(reopen(directory)), expectedState(self.before))
                self.assertEqual(sorted(os.listdir(directory)), ["log.1", "snapshot.1"])
                at += 1
                continue
            break
        self.assertEqual(
            crashes,
            ["truncate log.1", "fsync log.1", "remove log.0", "remove snapshot.2.tmp",
             "fsyncdir ."],
        )


class RealThreadsCompactionTests(TestCase):
    """
    Compaction on the real reactor and thread pool, while appends go on.
    """

    @inlineCallbacks
    def test_appendsWhileCompacting(self) -> Any:
        """
        With compaction every few kilobytes, hundreds of concurrent appends are all
        acknowledged, in the index, and found after a restart.
        """
        directory = Path(self.mktemp())
        index = RegistryIndex()
        journal = Journal.open(directory, index, globalReactor, compactAfter=2048)
        transactions: list[list[Record]] = []
        for n in range(400):
            transactions.append([LinkBlob("r", digest(n))])
            transactions.append([TagManifest("r", f"t{n}", digest(n))])
        for start in range(0, len(transactions), 40):
            yield gatherResults([journal.append(t) for t in transactions[start : start + 40]])
        yield journal.close()
        self.assertGreater(journal.generation, 3)
        expected = expectedState(transactions)
        self.assertEqual(state(index), expected)
        self.assertEqual(state(reopen(directory)), expected)


class GenerateTests(SynchronousTestCase):
    """
    L{writeManyTags} makes a data directory with many tags of one small image.
    """

    def test_writeManyTags(self) -> None:
        """
        The blobs are stored under their digests, the manifest is linked with its
        config and layer, and every tag points at it; a second call adds to the
        directory.
        """
        data = Path(self.mktemp())
        writeManyTags(data, "bench/many", 2500)
        writeManyTags(data, "bench/other", 3)
        index = RegistryIndex()
        replay(data / "journal", index)
        config, layer, manifest = smallImage()
        digests = [Digest.of(b) for b in (config, layer, manifest)]
        store = BlobStore(data / "blobs")
        for d, content in zip(digests, (config, layer, manifest), strict=True):
            self.assertEqual(store.read(d), content)
        repository = index.repositories["bench/many"]
        self.assertEqual(set(repository.tags), {f"t{n}" for n in range(2500)})
        self.assertEqual(set(repository.tags.values()), {digests[2]})
        self.assertEqual(repository.manifests[digests[2]].references, tuple(digests[:2]))
        self.assertEqual(repository.blobs, set(digests[:2]))
        self.assertEqual(len(index.repositories["bench/other"].tags), 3)
        self.assertEqual(sorted(os.listdir(data / "journal")), ["log.2", "snapshot.2"])

    def test_manifestRecord(self) -> None:
        """
        The manifest is recorded as a push of it would record it.
        """
        data = Path(self.mktemp())
        writeManyTags(data, "r", 1)
        index = RegistryIndex()
        replay(data / "journal", index)
        [entry] = index.repositories["r"].manifests.values()
        self.assertEqual(entry.mediaType, "application/vnd.oci.image.manifest.v1+json")
        self.assertEqual(entry.artifactType, "application/vnd.oci.image.config.v1+json")
        self.assertEqual(entry.size, len(smallImage()[2]))
        self.assertIsInstance(entry.toRecord("r"), PutManifest)
