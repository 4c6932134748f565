"""
Journal records: one small frozen value per kind of state change, and their JSON encoding.

A transaction is a list of records applied all together or not at all; it is encoded as one
JSON array of objects, each with a C{"t"} naming its kind and one member per field (fields
at their default are left out).  Digests are encoded as their text form.

The format grows by addition: a new kind of record gets a new name, a new field of an
existing kind gets a default, so everything written before still decodes.  A version of
ocid that meets a kind or a field it does not know refuses to load (L{NewerRecord}) rather
than guess at what it would have meant.

To add a kind of record: a frozen attrs class with a new C{kind} name (digest fields
converted by C{_digest}, C{_optionalDigest} or C{_digests}, which decoding recognizes), in
C{Record} and L{RECORD_TYPES}, applied by L{ocid.index}; whatever state it makes there
must also be written back as records by L{ocid.index.IndexImage.transactions}, which is
what snapshots hold.

Decoding interns digests (L{DigestTable}): the million tags of a repository that point at
one manifest share one L{Digest} object, parsed once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, ClassVar

import attrs

from ocid.digest import Digest
from ocid.errors import RegistryError
from ocid.manifest import Manifest


def _digest(value: str | Digest) -> Digest:
    return value if isinstance(value, Digest) else Digest.parse(value)


def _optionalDigest(value: str | Digest | None) -> Digest | None:
    return None if value is None else _digest(value)


def _digests(values: Iterable[str | Digest]) -> tuple[Digest, ...]:
    return tuple(_digest(v) for v in values)


def _strings(values: Iterable[str]) -> tuple[str, ...]:
    return values if isinstance(values, tuple) else tuple(values)


_string = attrs.validators.instance_of(str)


@attrs.frozen
class LinkBlob:
    """
    A blob became visible in a repository (pushed, mounted or referenced there).
    """

    kind: ClassVar[str] = "link"
    repository: str = attrs.field(validator=_string)
    digest: Digest = attrs.field(converter=_digest)


@attrs.frozen
class UnlinkBlob:
    """
    A blob was deleted from a repository (its bytes may still serve other repositories).
    """

    kind: ClassVar[str] = "unlink"
    repository: str = attrs.field(validator=_string)
    digest: Digest = attrs.field(converter=_digest)


@attrs.frozen
class PutManifest:
    """
    A manifest was stored in a repository.

    @ivar references: the digests of the blobs and manifests it references (config, layers,
        child manifests); they are linked into the repository with it.
    @ivar subject: the digest of its C{subject}, for the referrers API.
    @ivar artifactType: what the referrers API reports for it (already falling back to the
        config media type for image manifests).
    @ivar annotations: its annotations, for the referrers API.
    """

    kind: ClassVar[str] = "manifest"
    repository: str = attrs.field(validator=_string)
    digest: Digest = attrs.field(converter=_digest)
    mediaType: str = attrs.field(validator=_string)
    size: int = attrs.field(validator=attrs.validators.instance_of(int))
    references: tuple[Digest, ...] = attrs.field(converter=_digests, default=())
    subject: Digest | None = attrs.field(converter=_optionalDigest, default=None)
    artifactType: str | None = None
    annotations: dict[str, str] | None = attrs.field(default=None, eq=False)

    @classmethod
    def describing(
        cls, repository: str, digest: Digest, size: int, manifest: Manifest
    ) -> PutManifest:
        """
        The record storing the parsed C{manifest}, C{size} bytes with C{digest}.
        """
        return cls(
            repository=repository,
            digest=digest,
            mediaType=manifest.mediaType,
            size=size,
            references=tuple(d.digest for d in manifest.references()),
            subject=manifest.subject.digest if manifest.subject else None,
            artifactType=manifest.artifactType,
            annotations=manifest.annotations,
        )


@attrs.frozen
class DeleteManifest:
    """
    A manifest, and every tag pointing at it, was deleted from a repository; its digest
    is no longer linked there as content either (as an index's child, say).
    """

    kind: ClassVar[str] = "unmanifest"
    repository: str = attrs.field(validator=_string)
    digest: Digest = attrs.field(converter=_digest)


@attrs.frozen
class TagManifest:
    """
    A tag now points at a manifest.
    """

    kind: ClassVar[str] = "tag"
    repository: str = attrs.field(validator=_string)
    tag: str = attrs.field(validator=_string)
    digest: Digest = attrs.field(converter=_digest)


@attrs.frozen
class DeleteTag:
    """
    A tag was deleted; its manifest stays.
    """

    kind: ClassVar[str] = "untag"
    repository: str = attrs.field(validator=_string)
    tag: str = attrs.field(validator=_string)


@attrs.frozen
class LinkBlobs:
    """
    Many blobs became visible in a repository; with no blobs, the repository exists.
    Snapshots use it to record a repository's blobs in a few records.
    """

    kind: ClassVar[str] = "links"
    repository: str = attrs.field(validator=_string)
    digests: tuple[Digest, ...] = attrs.field(converter=_digests, default=())


@attrs.frozen
class TagAll:
    """
    Each of many tags now points at one manifest.  Snapshots use it to record a
    repository's tags in a few records.
    """

    kind: ClassVar[str] = "tags"
    repository: str = attrs.field(validator=_string)
    digest: Digest = attrs.field(converter=_digest)
    tags: tuple[str, ...] = attrs.field(converter=_strings, default=())


Record = (
    LinkBlob
    | UnlinkBlob
    | PutManifest
    | DeleteManifest
    | TagManifest
    | DeleteTag
    | LinkBlobs
    | TagAll
)

#: Every kind of record, by the name it is encoded with.
RECORD_TYPES: dict[str, type[Any]] = {
    cls.kind: cls
    for cls in (
        LinkBlob,
        UnlinkBlob,
        PutManifest,
        DeleteManifest,
        TagManifest,
        DeleteTag,
        LinkBlobs,
        TagAll,
    )
}


def _fieldKinds(cls: type[Any]) -> tuple[frozenset[str], tuple[str, ...], tuple[str, ...]]:
    """
    The field names of a record class, its single-digest fields, its digest-tuple fields.
    """
    names, single, multiple = set(), [], []
    for field in attrs.fields(cls):
        names.add(field.name)
        if field.converter in (_digest, _optionalDigest):
            single.append(field.name)
        elif field.converter is _digests:
            multiple.append(field.name)
    return frozenset(names), tuple(single), tuple(multiple)


_FIELDS = {cls: _fieldKinds(cls) for cls in RECORD_TYPES.values()}
_BY_KIND = {kind: (cls, *_FIELDS[cls]) for kind, cls in RECORD_TYPES.items()}


class UnknownRecord(ValueError):
    """
    A record in the journal is not one this version understands: malformed, or written
    by a newer version.
    """


class NewerRecord(UnknownRecord):
    """
    A record has a kind or a field this version does not know: a newer version of ocid
    wrote it.
    """


class DigestTable(dict[str, Digest]):
    """
    Digests by their text, each parsed and validated once: decoding a journal through one
    table makes every record naming the same digest share one L{Digest}.  Look digests up
    by subscription: C{table[text]}.
    """

    def __missing__(self, text: str) -> Digest:
        if not isinstance(text, str):
            raise UnknownRecord(f"a digest is not a string: {text!r:.100}")
        try:
            digest = Digest.parse(text)
        except RegistryError:
            raise UnknownRecord(f"invalid digest {text!r:.100}") from None
        self[text] = digest
        return digest


def encodeRecord(record: Record) -> dict[str, Any]:
    """
    The JSON object for C{record}; fields left at C{None} or empty are omitted.
    """
    obj: dict[str, Any] = {"t": record.kind}
    _, single, multiple = _FIELDS[type(record)]
    for field in attrs.fields(type(record)):
        name = field.name
        value = getattr(record, name)
        if value is None or value == ():
            continue
        if name in single:
            value = str(value)
        elif name in multiple:
            value = [str(d) for d in value]
        elif isinstance(value, tuple):
            value = list(value)
        obj[name] = value
    return obj


def decodeRecord(obj: dict[str, Any], digests: DigestTable | None = None) -> Record:
    """
    The record that C{obj} encodes.  C{obj} is consumed (its C{"t"} member is removed).

    @param digests: the table interning the digests of the records decoded together.
    @raise UnknownRecord: if C{obj} is malformed.
    @raise NewerRecord: if C{obj} is a kind or has a field this version does not know.
    """
    if digests is None:
        digests = DigestTable()
    try:
        kind = obj.pop("t")
    except (KeyError, TypeError, AttributeError):
        raise UnknownRecord(f"not a journal record: {obj!r:.200}") from None
    try:
        cls, names, single, multiple = _BY_KIND[kind]
    except (KeyError, TypeError):
        raise NewerRecord(f"unknown kind of journal record {kind!r:.100}") from None
    try:
        for name in single:
            value = obj.get(name)
            if value is not None:
                obj[name] = digests[value]
        for name in multiple:
            value = obj.get(name)
            if value is not None:
                if not isinstance(value, list):
                    raise UnknownRecord(f"{name} of a {cls.kind!r} record is not a list")
                obj[name] = tuple([digests[v] for v in value])
        return cls(**obj)  # type: ignore[no-any-return]
    except UnknownRecord:
        raise
    except Exception as e:
        unknown = obj.keys() - names
        if unknown:
            raise NewerRecord(
                f"unknown fields {sorted(unknown)!r:.200} in a {cls.kind!r} record"
            ) from None
        raise UnknownRecord(
            f"malformed {cls.kind!r} journal record {obj!r:.200}: {e}"
        ) from e


def encodeTransaction(records: Iterable[Record]) -> bytes:
    """
    The payload bytes of one journal frame holding C{records}.
    """
    return json.dumps(
        [encodeRecord(r) for r in records], separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def encodeGroup(transactions: list[bytes]) -> bytes:
    """
    The payload of one frame holding several transactions (each as L{encodeTransaction}
    made it), written together by one group commit: they reach the disk, or a torn
    write loses them, together.
    """
    if len(transactions) == 1:
        return transactions[0]
    return b"[" + b",".join(transactions) + b"]"


def decodeTransaction(payload: bytes, digests: DigestTable | None = None) -> list[Record]:
    """
    The records in the payload of a frame holding one transaction.
    """
    objs = _loads(payload)
    if not isinstance(objs, list) or (objs and not isinstance(objs[0], dict)):
        raise UnknownRecord("a journal transaction is not a list of records")
    table = digests or DigestTable()
    return [decodeRecord(obj, table) for obj in objs]


def decodeFrame(payload: bytes, digests: DigestTable | None = None) -> list[list[Record]]:
    """
    The transactions in a frame's payload: one transaction (a JSON array of records), or
    a group of them (a JSON array of such arrays, see L{encodeGroup}).
    """
    return transactionsOf(_loads(payload), digests or DigestTable())


def transactionsOf(value: Any, digests: DigestTable) -> list[list[Record]]:
    """
    The transactions in the decoded JSON C{value} of a frame's payload.
    """
    if not isinstance(value, list):
        raise UnknownRecord("a journal transaction is not a list")
    if value and isinstance(value[0], list):
        transactions = []
        for transaction in value:
            if not isinstance(transaction, list):
                raise UnknownRecord("a journal transaction is not a list")
            transactions.append([decodeRecord(obj, digests) for obj in transaction])
        return transactions
    return [[decodeRecord(obj, digests) for obj in value]]


def _loads(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except ValueError as e:
        raise UnknownRecord(f"undecodable JSON: {e}") from e


def decodeFrames(payloads: list[bytes]) -> list[Any]:
    """
    The decoded JSON value of each payload, decoded all in one go (much quicker than
    one by one, when they are many and small).

    @raise UnknownRecord: if some payload is not one JSON value.
    """
    try:
        values = json.loads(b"[" + b",".join(payloads) + b"]")
    except ValueError:
        values = None
    if values is None or len(values) != len(payloads):
        # Find which one is bad.
        return [_loads(payload) for payload in payloads]
    return values  # type: ignore[no-any-return]
