"""
The in-memory index of repository state, built by replaying the journal and kept current by
applying each transaction once it is durable.  Every read is served from here.

The index changes only by applying journal records (L{RegistryIndex.apply}), and all of it
can be written back as records (L{IndexImage.transactions}): that is what a journal
snapshot holds.  State added here must be both made by records and dumped as records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import repeat
from typing import Any

import attrs

from ocid.digest import Digest
from ocid.journal.records import (
    DeleteManifest,
    DeleteTag,
    LinkBlob,
    LinkBlobs,
    PutManifest,
    Record,
    TagAll,
    TagManifest,
    UnlinkBlob,
)
from ocid.manifest import INDEX_TYPES


@attrs.frozen
class ManifestEntry:
    """
    What the index knows of one stored manifest (its bytes are a blob file).

    Its fields are those of L{PutManifest} but the repository, by the same names.
    """

    digest: Digest
    mediaType: str
    size: int
    references: tuple[Digest, ...] = ()
    subject: Digest | None = None
    artifactType: str | None = None
    annotations: dict[str, str] | None = attrs.field(default=None, eq=False)

    @classmethod
    def fromRecord(cls, record: PutManifest) -> ManifestEntry:
        """
        The entry a L{PutManifest} record stores.
        """
        return cls(*[getattr(record, name) for name in _ENTRY_FIELDS])

    def toRecord(self, repository: str) -> PutManifest:
        """
        The L{PutManifest} record that stores this entry in C{repository}.
        """
        return PutManifest(repository, *[getattr(self, name) for name in _ENTRY_FIELDS])


_ENTRY_FIELDS = tuple(field.name for field in attrs.fields(ManifestEntry))


def linkedReferences(manifest: PutManifest | ManifestEntry) -> tuple[Digest, ...]:
    """
    The references a stored manifest links into its repository as blobs: an image
    manifest's config and layers.  An index's references are manifests, never linked as
    blobs, so that deleting one of them leaves nothing of it readable or listable.
    """
    return () if manifest.mediaType in INDEX_TYPES else manifest.references


@attrs.define
class Repository:
    """
    One repository: the blobs visible in it, its manifests, its tags, and which of its
    manifests refer to which subject.
    """

    name: str
    blobs: set[Digest] = attrs.field(factory=set)
    manifests: dict[Digest, ManifestEntry] = attrs.field(factory=dict)
    tags: dict[str, Digest] = attrs.field(factory=dict)
    referrers: dict[Digest, dict[Digest, ManifestEntry]] = attrs.field(factory=dict)
    _sortedTags: list[str] | None = None
    #: The tags pointing at each manifest, made when first needed (deleting a manifest
    #: then does not look at every tag), and kept in step with C{tags} from then on.
    _tagsByDigest: dict[Digest, set[str]] | None = None

    def sortedTags(self) -> list[str]:
        """
        The tags in "ASCIIbetical" order (as Go's C{sort.Strings}); cached until they change.
        """
        if self._sortedTags is None:
            self._sortedTags = sorted(self.tags)
        return self._sortedTags

    def tagsPointingAt(self, digest: Digest) -> set[str]:
        """
        The tags that point at the manifest C{digest} (do not change the set).
        """
        return self._byDigest().get(digest, set())

    def hasContent(self, digest: Digest) -> bool:
        """
        Whether C{digest} names a blob or manifest visible in this repository.
        """
        return digest in self.blobs or digest in self.manifests

    def apply(self, record: Record) -> None:
        """
        Apply one record to this repository.
        """
        _APPLY[type(record)](self, record)

    def _byDigest(self) -> dict[Digest, set[str]]:
        if self._tagsByDigest is None:
            byDigest: dict[Digest, set[str]] = {}
            for tag, digest in self.tags.items():
                tags = byDigest.get(digest)
                if tags is None:
                    byDigest[digest] = {tag}
                else:
                    tags.add(tag)
            self._tagsByDigest = byDigest
        return self._tagsByDigest

    def _linkBlob(self, record: LinkBlob) -> None:
        self.blobs.add(record.digest)

    def _linkBlobs(self, record: LinkBlobs) -> None:
        self.blobs.update(record.digests)

    def _unlinkBlob(self, record: UnlinkBlob) -> None:
        self.blobs.discard(record.digest)

    def _putManifest(self, record: PutManifest) -> None:
        entry = ManifestEntry.fromRecord(record)
        previous = self.manifests.get(record.digest)
        if previous is not None:
            self._forgetReferrer(previous)
        self.manifests[record.digest] = entry
        self.blobs.update(linkedReferences(record))
        if entry.subject is not None:
            self.referrers.setdefault(entry.subject, {})[entry.digest] = entry

    def _forgetReferrer(self, entry: ManifestEntry) -> None:
        if entry.subject is None:
            return
        referrers = self.referrers.get(entry.subject)
        if referrers is not None:
            referrers.pop(entry.digest, None)
            if not referrers:
                del self.referrers[entry.subject]

    def _deleteManifest(self, record: DeleteManifest) -> None:
        # Also unlinked as content that an index listed ("Deleting Manifests").
        self.blobs.discard(record.digest)
        removed = self.manifests.pop(record.digest, None)
        if removed is not None:
            self._forgetReferrer(removed)
        stale = self._byDigest().pop(record.digest, None)
        if stale:
            for tag in stale:
                del self.tags[tag]
            self._sortedTags = None

    def _retag(self, tag: str, digest: Digest | None) -> None:
        """
        Keep C{_tagsByDigest} in step with C{tags} when C{tag} is about to point at
        C{digest} (or be deleted, for C{None}).
        """
        byDigest = self._tagsByDigest
        if byDigest is None:
            return
        old = self.tags.get(tag)
        if old is not None:
            tags = byDigest[old]
            if len(tags) == 1:
                del byDigest[old]
            else:
                tags.discard(tag)
        if digest is not None:
            tags = byDigest.get(digest)
            if tags is None:
                byDigest[digest] = {tag}
            else:
                tags.add(tag)

    def _tagManifest(self, record: TagManifest) -> None:
        tag, digest = record.tag, record.digest
        tags = self.tags
        if tag not in tags:
            self._sortedTags = None
        if self._tagsByDigest is not None:
            self._retag(tag, digest)
        tags[tag] = digest

    def _tagAll(self, record: TagAll) -> None:
        self._sortedTags = None
        if self._tagsByDigest is not None:
            for tag in record.tags:
                self._retag(tag, record.digest)
        if self.tags:
            self.tags.update(zip(record.tags, repeat(record.digest)))
        else:
            self.tags = dict.fromkeys(record.tags, record.digest)

    def _deleteTag(self, record: DeleteTag) -> None:
        if record.tag in self.tags:
            self._retag(record.tag, None)
            del self.tags[record.tag]
            self._sortedTags = None


_APPLY: dict[type[Any], Callable[[Repository, Any], None]] = {
    LinkBlob: Repository._linkBlob,
    LinkBlobs: Repository._linkBlobs,
    UnlinkBlob: Repository._unlinkBlob,
    PutManifest: Repository._putManifest,
    DeleteManifest: Repository._deleteManifest,
    TagManifest: Repository._tagManifest,
    TagAll: Repository._tagAll,
    DeleteTag: Repository._deleteTag,
}


@attrs.define
class RegistryIndex:
    """
    Every repository, by name.
    """

    repositories: dict[str, Repository] = attrs.field(factory=dict)
    _sortedNames: list[str] | None = None

    def apply(self, records: Iterable[Record]) -> None:
        """
        Apply one transaction.
        """
        repositories = self.repositories
        for record in records:
            repository = repositories.get(record.repository)
            if repository is None:
                repository = repositories[record.repository] = Repository(
                    record.repository
                )
                self._sortedNames = None
            _APPLY[type(record)](repository, record)

    def get(self, name: str) -> Repository | None:
        """
        The repository C{name}, if anything was ever stored in it.
        """
        return self.repositories.get(name)

    def sortedNames(self) -> list[str]:
        """
        Every repository name, in lexical order.
        """
        if self._sortedNames is None:
            self._sortedNames = sorted(self.repositories)
        return self._sortedNames

    def anyRepositoryHas(self, digest: Digest) -> bool:
        """
        Whether any repository links the blob C{digest}.
        """
        return any(digest in r.blobs for r in self.repositories.values())

    def image(self) -> IndexImage:
        """
        A copy of the current state that later changes do not touch, to be written out
        (by L{IndexImage.transactions}) in another thread.  Copies only containers, with
        C code: quick even for millions of tags.
        """
        return IndexImage(
            [
                RepositoryImage(r.name, r.blobs.copy(), r.manifests.copy(), r.tags.copy())
                for r in self.repositories.values()
            ]
        )


@attrs.frozen
class RepositoryImage:
    """
    The state of one repository at some moment.
    """

    name: str
    blobs: set[Digest]
    manifests: dict[Digest, ManifestEntry]
    tags: dict[str, Digest]


#: Most records of one transaction in a dump, and most digests or tags in one record.
DUMP_RECORDS = 1000
DUMP_ITEMS = 250_000


@attrs.frozen
class IndexImage:
    """
    The state of every repository at some moment (see L{RegistryIndex.image}).
    """

    repositories: list[RepositoryImage]

    def transactions(self) -> Iterator[list[Record]]:
        """
        Transactions that, applied to an empty index, rebuild this state exactly: for each
        repository its manifests, its blobs (manifests link their references, so any
        reference that was unlinked since is unlinked again) and its tags, grouped by
        manifest.  No transaction holds more than L{DUMP_RECORDS} records or
        L{DUMP_ITEMS} digests or tags.
        """
        for repository in self.repositories:
            name = repository.name
            batch: list[Record] = []
            referenced: set[Digest] = set()
            for entry in repository.manifests.values():
                batch.append(entry.toRecord(name))
                referenced.update(linkedReferences(entry))
                if len(batch) >= DUMP_RECORDS:
                    yield batch
                    batch = []
            if batch:
                yield batch
            blobs = list(repository.blobs)
            yield [LinkBlobs(name, tuple(blobs[:DUMP_ITEMS]))]
            for start in range(DUMP_ITEMS, len(blobs), DUMP_ITEMS):
                yield [LinkBlobs(name, tuple(blobs[start : start + DUMP_ITEMS]))]
            unlinked = referenced - repository.blobs
            if unlinked:
                yield [UnlinkBlob(name, digest) for digest in unlinked]
            byDigest: dict[Digest, list[str]] = {}
            for tag, digest in repository.tags.items():
                tags = byDigest.get(digest)
                if tags is None:
                    tags = byDigest[digest] = []
                tags.append(tag)
            for digest, tags in byDigest.items():
                for start in range(0, len(tags), DUMP_ITEMS):
                    yield [TagAll(name, digest, tuple(tags[start : start + DUMP_ITEMS]))]
