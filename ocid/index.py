"""
The in-memory index of repository state, built by replaying the journal and kept current by
applying each transaction once it is durable.  Every read is served from here.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from ocid.digest import Digest
from ocid.journal.records import (
    DeleteManifest,
    DeleteTag,
    LinkBlob,
    PutManifest,
    Record,
    TagManifest,
    UnlinkBlob,
)


@attrs.frozen
class ManifestEntry:
    """
    What the index knows of one stored manifest (its bytes are a blob file).
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
        return cls(
            digest=record.digest,
            mediaType=record.mediaType,
            size=record.size,
            references=record.references,
            subject=record.subject,
            artifactType=record.artifactType,
            annotations=record.annotations,
        )


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

    def sortedTags(self) -> list[str]:
        """
        The tags in "ASCIIbetical" order (as Go's C{sort.Strings}); cached until they change.
        """
        if self._sortedTags is None:
            self._sortedTags = sorted(self.tags)
        return self._sortedTags

    def hasContent(self, digest: Digest) -> bool:
        """
        Whether C{digest} names a blob or manifest visible in this repository.
        """
        return digest in self.blobs or digest in self.manifests

    def apply(self, record: Record) -> None:
        """
        Apply one record to this repository.
        """
        if isinstance(record, LinkBlob):
            self.blobs.add(record.digest)
        elif isinstance(record, UnlinkBlob):
            self.blobs.discard(record.digest)
        elif isinstance(record, PutManifest):
            entry = ManifestEntry.fromRecord(record)
            self.manifests[record.digest] = entry
            self.blobs.update(record.references)
            if entry.subject is not None:
                self.referrers.setdefault(entry.subject, {})[entry.digest] = entry
        elif isinstance(record, DeleteManifest):
            removed = self.manifests.pop(record.digest, None)
            if removed is not None and removed.subject is not None:
                referrers = self.referrers.get(removed.subject, {})
                referrers.pop(removed.digest, None)
                if not referrers:
                    self.referrers.pop(removed.subject, None)
            stale = [tag for tag, digest in self.tags.items() if digest == record.digest]
            for tag in stale:
                del self.tags[tag]
            if stale:
                self._sortedTags = None
        elif isinstance(record, TagManifest):
            if record.tag not in self.tags:
                self._sortedTags = None
            self.tags[record.tag] = record.digest
        elif isinstance(record, DeleteTag):
            if self.tags.pop(record.tag, None) is not None:
                self._sortedTags = None


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
        for record in records:
            repository = self.repositories.get(record.repository)
            if repository is None:
                repository = self.repositories[record.repository] = Repository(
                    record.repository
                )
                self._sortedNames = None
            repository.apply(record)

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
