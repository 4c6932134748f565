"""
Journal records: one small frozen value per kind of state change, and their JSON encoding.

A transaction is a list of records applied all together or not at all; it is encoded as one
JSON array of objects, each with a C{"t"} naming its kind.  New kinds of record get new names;
a journal holding a name this version does not know refuses to load rather than guess.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import attrs

from ocid.digest import Digest


def _digest(value: str | Digest) -> Digest:
    return value if isinstance(value, Digest) else Digest.parse(value)


def _optionalDigest(value: str | Digest | None) -> Digest | None:
    return None if value is None else _digest(value)


def _references(values: Any) -> tuple[Digest, ...]:
    return tuple(_digest(v) for v in values)


@attrs.frozen
class LinkBlob:
    """
    A blob became visible in a repository (pushed, mounted or referenced there).
    """

    kind: ClassVar[str] = "link"
    repository: str
    digest: Digest = attrs.field(converter=_digest)


@attrs.frozen
class UnlinkBlob:
    """
    A blob was deleted from a repository (its bytes may still serve other repositories).
    """

    kind: ClassVar[str] = "unlink"
    repository: str
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
    repository: str
    digest: Digest = attrs.field(converter=_digest)
    mediaType: str
    size: int
    references: tuple[Digest, ...] = attrs.field(converter=_references, default=())
    subject: Digest | None = attrs.field(converter=_optionalDigest, default=None)
    artifactType: str | None = None
    annotations: dict[str, str] | None = attrs.field(default=None, eq=False)


@attrs.frozen
class DeleteManifest:
    """
    A manifest, and every tag pointing at it, was deleted from a repository.
    """

    kind: ClassVar[str] = "unmanifest"
    repository: str
    digest: Digest = attrs.field(converter=_digest)


@attrs.frozen
class TagManifest:
    """
    A tag now points at a manifest.
    """

    kind: ClassVar[str] = "tag"
    repository: str
    tag: str
    digest: Digest = attrs.field(converter=_digest)


@attrs.frozen
class DeleteTag:
    """
    A tag was deleted; its manifest stays.
    """

    kind: ClassVar[str] = "untag"
    repository: str
    tag: str


Record = LinkBlob | UnlinkBlob | PutManifest | DeleteManifest | TagManifest | DeleteTag

_KINDS: dict[str, type[Any]] = {
    cls.kind: cls
    for cls in (LinkBlob, UnlinkBlob, PutManifest, DeleteManifest, TagManifest, DeleteTag)
}


class UnknownRecord(ValueError):
    """
    A record in the journal is not one this version understands.
    """


def _encodeValue(value: Any) -> Any:
    if isinstance(value, Digest):
        return str(value)
    if isinstance(value, tuple):
        return [_encodeValue(v) for v in value]
    return value


def encodeRecord(record: Record) -> dict[str, Any]:
    """
    The JSON object for C{record}; fields left at C{None} are omitted.
    """
    obj: dict[str, Any] = {"t": record.kind}
    for field in attrs.fields(type(record)):
        value = getattr(record, field.name)
        if value is None or value == ():
            continue
        obj[field.name] = _encodeValue(value)
    return obj


def decodeRecord(obj: dict[str, Any]) -> Record:
    """
    The record that C{obj} encodes.
    """
    try:
        cls = _KINDS[obj["t"]]
    except (KeyError, TypeError):
        raise UnknownRecord(f"unknown journal record {obj!r:.200}") from None
    fields = {k: v for k, v in obj.items() if k != "t"}
    try:
        return cls(**fields)  # type: ignore[no-any-return]
    except Exception as e:
        raise UnknownRecord(f"malformed journal record {obj!r:.200}: {e}") from e


def encodeTransaction(records: list[Record]) -> bytes:
    """
    The payload bytes of one journal frame holding C{records}.
    """
    return json.dumps(
        [encodeRecord(r) for r in records], separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def decodeTransaction(payload: bytes) -> list[Record]:
    """
    The records in a frame's payload.
    """
    objs = json.loads(payload)
    if not isinstance(objs, list):
        raise UnknownRecord("a journal transaction is not a list")
    return [decodeRecord(obj) for obj in objs]
