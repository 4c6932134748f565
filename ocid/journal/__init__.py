"""
The journal: an append-only log of framed, checksummed transactions that records every
change to repository state (blob links, manifests, tags, deletions), replayed into the
in-memory index at startup and compacted into snapshots as it grows.
"""

from ocid.journal.journal import DEFAULT_COMPACT_AFTER, Journal
from ocid.journal.log import CorruptJournal
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
    decodeTransaction,
    encodeTransaction,
)

__all__ = [
    "DEFAULT_COMPACT_AFTER",
    "CorruptJournal",
    "DeleteManifest",
    "DeleteTag",
    "Journal",
    "LinkBlob",
    "LinkBlobs",
    "PutManifest",
    "Record",
    "TagAll",
    "TagManifest",
    "UnlinkBlob",
    "decodeTransaction",
    "encodeTransaction",
]
