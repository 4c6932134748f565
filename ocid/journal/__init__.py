"""
The journal: an append-only log of framed, checksummed transactions that records every
change to repository state (blob links, manifests, tags, deletions) and is replayed into the
in-memory index at startup.
"""

from ocid.journal.log import CorruptJournal, Journal
from ocid.journal.records import (
    DeleteManifest,
    DeleteTag,
    LinkBlob,
    PutManifest,
    Record,
    TagManifest,
    UnlinkBlob,
    decodeTransaction,
    encodeTransaction,
)

__all__ = [
    "CorruptJournal",
    "DeleteManifest",
    "DeleteTag",
    "Journal",
    "LinkBlob",
    "PutManifest",
    "Record",
    "TagManifest",
    "UnlinkBlob",
    "decodeTransaction",
    "encodeTransaction",
]
