"""
The registry's operations: what a push, a pull, a mount or a delete does to blob files, the
journal and the in-memory index, in the order that keeps every acknowledged change durable.

Each change is written in full (blob files fsynced and renamed into place) before its
journal transaction is appended; the transaction is durable before the index shows it and
before the caller acknowledges it to the client.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from ocid.digest import Digest
from ocid.errors import (
    BLOB_UNKNOWN,
    DIGEST_INVALID,
    MANIFEST_BLOB_UNKNOWN,
    MANIFEST_INVALID,
    MANIFEST_UNKNOWN,
    NAME_UNKNOWN,
    RegistryError,
    StorageError,
)
from ocid.index import ManifestEntry, RegistryIndex, Repository
from ocid.journal import (
    DEFAULT_COMPACT_AFTER,
    DeleteManifest,
    DeleteTag,
    Journal,
    LinkBlob,
    PutManifest,
    Record,
    TagManifest,
    UnlinkBlob,
)
from ocid.manifest import MAX_MANIFEST_SIZE, parseManifest
from ocid.reference import validateTag
from ocid.storage.blobs import BlobStore
from ocid.storage.hashing import HashingThread
from ocid.storage.uploads import UploadSession, UploadStore, hashFile, syncAndClose

log = Logger()

T = TypeVar("T")

#: Manifest bytes kept in memory for fast pulls.
MANIFEST_CACHE_BYTES = 64 * 1024 * 1024


@attrs.define
class ManifestCache:
    """
    A bounded least-recently-used cache of manifest bytes by digest.
    """

    capacity: int = MANIFEST_CACHE_BYTES
    _entries: OrderedDict[Digest, bytes] = attrs.field(factory=OrderedDict)
    _size: int = 0

    def get(self, digest: Digest) -> bytes | None:
        body = self._entries.get(digest)
        if body is not None:
            self._entries.move_to_end(digest)
        return body

    def put(self, digest: Digest, body: bytes) -> None:
        if digest in self._entries or len(body) > self.capacity:
            return
        self._entries[digest] = body
        self._size += len(body)
        while self._size > self.capacity:
            _, evicted = self._entries.popitem(last=False)
            self._size -= len(evicted)


@attrs.define
class Registry:
    """
    The registry stored under C{dataPath}.  Call L{open} before anything else.

    @ivar dataPath: the data directory.
    @ivar blobs: the content-addressed blob files.
    @ivar uploads: the upload sessions.
    @ivar index: the in-memory repository state.
    """

    dataPath: Path
    _reactor: Any
    _threadpool: ThreadPool | None = None
    journalCompactAfter: int = DEFAULT_COMPACT_AFTER
    blobs: BlobStore = attrs.field(init=False)
    uploads: UploadStore = attrs.field(init=False)
    index: RegistryIndex = attrs.field(init=False, factory=RegistryIndex)
    journal: Journal | None = attrs.field(init=False, default=None)
    _manifests: ManifestCache = attrs.field(init=False, factory=ManifestCache)

    def __attrs_post_init__(self) -> None:
        self.blobs = BlobStore(self.dataPath / "blobs")
        self.uploads = UploadStore(self.dataPath / "uploads", self._reactor)

    def open(self) -> None:
        """
        Create the data directory layout if needed, replay the journal into the index and
        find the upload sessions in progress.  Blocking: part of startup.
        """
        for directory in (self.dataPath, self.blobs.root, self.dataPath / "journal"):
            directory.mkdir(parents=True, exist_ok=True)
        if self._threadpool is None:
            self._threadpool = self._reactor.getThreadPool()
        self.journal = Journal.open(
            self.dataPath / "journal",
            self.index,
            self._reactor,
            self._threadpool,
            self.journalCompactAfter,
        )
        self.uploads.backgroundSync = lambda fd: self._inThread(syncAndClose, fd)
        self.uploads.hashing = HashingThread()
        self.uploads.load()
        log.info(
            "registry at {path} opened: {repositories} repositories",
            path=str(self.dataPath),
            repositories=len(self.index.repositories),
        )

    def close(self) -> Deferred[None]:
        """
        Finish pending journal writes and close the journal.
        """
        assert self.journal is not None
        return self.journal.close()

    # Blocking work goes to the thread pool.

    def _inThread(self, f: Callable[..., T], *args: Any) -> Deferred[T]:
        assert self._threadpool is not None
        return deferToThreadPool(self._reactor, self._threadpool, f, *args)

    async def _record(self, records: list[Record]) -> None:
        """
        Append one transaction; once it is durable, the journal applies it to the index.
        """
        assert self.journal is not None
        await self.journal.append(records)

    # Reads.

    def repository(self, name: str) -> Repository:
        """
        The repository C{name}, or C{NAME_UNKNOWN}.
        """
        repository = self.index.get(name)
        if repository is None:
            raise RegistryError(NAME_UNKNOWN, detail={"name": name})
        return repository

    def blobSize(self, name: str, digest: Digest) -> int:
        """
        The size of blob C{digest} in repository C{name}, or C{BLOB_UNKNOWN}.
        """
        repository = self.index.get(name)
        if repository is None or not repository.hasContent(digest):
            raise RegistryError(BLOB_UNKNOWN, detail={"digest": str(digest)})
        size = self.blobs.size(digest)
        if size is None:
            log.error(
                "blob {digest} is linked in {repository} but its file is missing",
                digest=str(digest),
                repository=name,
            )
            raise RegistryError(BLOB_UNKNOWN, detail={"digest": str(digest)})
        return size

    def resolveManifest(self, name: str, reference: str | Digest) -> ManifestEntry:
        """
        The manifest that C{reference} (a tag or digest) names in C{name}, or
        C{MANIFEST_UNKNOWN} / C{NAME_UNKNOWN}.
        """
        repository = self.repository(name)
        if isinstance(reference, Digest):
            digest: Digest | None = reference
        else:
            digest = repository.tags.get(reference)
        entry = repository.manifests.get(digest) if digest is not None else None
        if entry is None:
            raise RegistryError(
                MANIFEST_UNKNOWN, detail={"name": name, "reference": str(reference)}
            )
        return entry

    def manifestBytes(self, entry: ManifestEntry) -> bytes:
        """
        The exact bytes of a stored manifest.
        """
        body = self._manifests.get(entry.digest)
        if body is None:
            body = self.blobs.read(entry.digest)
            self._manifests.put(entry.digest, body)
        return body

    # Blob changes.

    def startUpload(self, name: str, algorithm: str = "sha256") -> UploadSession:
        """
        Open a new upload session into repository C{name}.
        """
        return self.uploads.create(name, algorithm)

    async def completeUpload(self, session: UploadSession, expected: Digest) -> Digest:
        """
        Check that the session's bytes have digest C{expected}, store them as that blob
        and link it into the session's repository.  A mismatch removes the session and
        raises C{DIGEST_INVALID}.
        """
        actual = session.digestIn(expected.algorithm)
        if actual is None:
            actual = await self._inThread(hashFile, session.dataPath, expected.algorithm)
        if actual != expected:
            self.uploads.remove(session)
            raise RegistryError(
                DIGEST_INVALID,
                detail={"expected": str(expected), "actual": str(actual)},
            )
        self.uploads.detach(session)
        try:
            await self._inThread(self.blobs.commit, session.dataPath, expected)
        except OSError as e:
            self.uploads.remove(session)
            raise StorageError(f"could not store blob {expected}: {e}") from e
        self.uploads.remove(session)
        await self._record([LinkBlob(session.repository, expected)])
        log.info(
            "stored blob {digest} ({size} bytes) in {repository}",
            digest=str(expected),
            size=session.size,
            repository=session.repository,
        )
        return expected

    async def mountBlob(self, name: str, digest: Digest, source: str | None) -> bool:
        """
        Link blob C{digest} into C{name} from repository C{source} (from any repository
        when C{source} is C{None}); C{False} if it is not there to mount.
        """
        if source is None:
            available = self.index.anyRepositoryHas(digest)
        else:
            repository = self.index.get(source)
            available = repository is not None and repository.hasContent(digest)
        if not available or self.blobs.size(digest) is None:
            return False
        target = self.index.get(name)
        if target is None or digest not in target.blobs:
            await self._record([LinkBlob(name, digest)])
        return True

    async def deleteBlob(self, name: str, digest: Digest) -> None:
        """
        Unlink blob C{digest} from C{name}.
        """
        repository = self.index.get(name)
        if repository is None or digest not in repository.blobs:
            raise RegistryError(BLOB_UNKNOWN, detail={"digest": str(digest)})
        await self._record([UnlinkBlob(name, digest)])

    # Manifest changes.

    async def putManifest(
        self,
        name: str,
        reference: str | Digest,
        contentType: str | None,
        body: bytes,
        tags: list[str],
    ) -> ManifestEntry:
        """
        Validate and store a manifest, then point C{reference} (when a tag) and C{tags} at
        it, all in one transaction.
        """
        if len(body) > MAX_MANIFEST_SIZE:
            raise RegistryError(
                MANIFEST_INVALID,
                "manifest too large",
                detail={"limit": MAX_MANIFEST_SIZE},
                status=413,
            )
        manifest = parseManifest(body, contentType)
        if isinstance(reference, Digest):
            digest = Digest.of(body, reference.algorithm)
            if digest != reference:
                raise RegistryError(
                    DIGEST_INVALID,
                    "manifest does not match the digest it was pushed by",
                    detail={"expected": str(reference), "actual": str(digest)},
                )
            allTags = list(tags)
        else:
            digest = Digest.of(body)
            allTags = [reference, *tags]
        for tag in allTags:
            validateTag(tag)
        repository = self.index.get(name)
        missing = [
            str(d.digest)
            for d in manifest.references()
            if repository is None or not repository.hasContent(d.digest)
        ]
        if missing:
            raise RegistryError(
                MANIFEST_BLOB_UNKNOWN, detail={"digests": missing[:100]}
            )
        await self._inThread(self.blobs.write, digest, body)
        self._manifests.put(digest, body)
        put = PutManifest.describing(name, digest, len(body), manifest)
        records: list[Record] = [put]
        records.extend(TagManifest(name, tag, digest) for tag in dict.fromkeys(allTags))
        await self._record(records)
        log.info(
            "stored manifest {digest} in {repository} tagged {tags}",
            digest=str(digest),
            repository=name,
            tags=allTags,
        )
        return ManifestEntry.fromRecord(put)

    async def deleteManifest(self, name: str, reference: str | Digest) -> None:
        """
        Delete a tag (only the tag), or a manifest by digest with every tag pointing at it.
        """
        repository = self.repository(name)
        if isinstance(reference, Digest):
            if reference not in repository.manifests:
                raise RegistryError(
                    MANIFEST_UNKNOWN, detail={"name": name, "reference": str(reference)}
                )
            await self._record([DeleteManifest(name, reference)])
        else:
            if reference not in repository.tags:
                raise RegistryError(
                    MANIFEST_UNKNOWN, detail={"name": name, "reference": reference}
                )
            await self._record([DeleteTag(name, reference)])
