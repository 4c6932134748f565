"""
The referrers list of a subject ("Listing Referrers"): the image index of descriptors
the referrers API answers, filtered by C{artifactType} and cut into pages.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import attrs

from ocid.index import ManifestEntry
from ocid.manifest import OCI_INDEX

#: Most descriptors in one page of a referrers list.
REFERRERS_PAGE = 1000
#: Most bytes of descriptors in one page: large annotations end a page early, so a page
#: stays well under the 4 MiB clients expect to read for a manifest.
REFERRERS_PAGE_BYTES = 1024 * 1024


def referrerDescriptor(entry: ManifestEntry) -> dict[str, Any]:
    """
    The descriptor of referrer C{entry}: its C{artifactType} (for an image manifest
    already falling back to its config's media type; omitted when empty) and annotations.
    """
    descriptor: dict[str, Any] = {
        "mediaType": entry.mediaType,
        "digest": str(entry.digest),
        "size": entry.size,
    }
    if entry.artifactType:
        descriptor["artifactType"] = entry.artifactType
    if entry.annotations:
        descriptor["annotations"] = entry.annotations
    return descriptor


@attrs.frozen
class ReferrersPage:
    """
    One page of a referrers list.

    @ivar index: the image index to answer.
    @ivar nextLast: the C{last} parameter of the next page, if there is one.
    """

    index: dict[str, Any]
    nextLast: str | None


def referrersPage(
    entries: Iterable[ManifestEntry],
    artifactTypes: frozenset[str] | None,
    last: str | None,
    pageSize: int = REFERRERS_PAGE,
    pageBytes: int = REFERRERS_PAGE_BYTES,
) -> ReferrersPage:
    """
    The page of referrers C{entries} that follows the referrer whose digest is C{last}.

    @param artifactTypes: keep only referrers of one of these artifact types; C{None}
        keeps all.
    @param last: the digest the previous page ended with, or C{None} for the first page.
    """
    selected = sorted(
        (
            e
            for e in entries
            if artifactTypes is None or e.artifactType in artifactTypes
        ),
        key=lambda e: str(e.digest),
    )
    if last is not None:
        selected = [e for e in selected if str(e.digest) > last]
    manifests: list[dict[str, Any]] = []
    used = 0
    for entry in selected:
        descriptor = referrerDescriptor(entry)
        size = len(json.dumps(descriptor, separators=(",", ":")))
        if manifests and (len(manifests) >= pageSize or used + size > pageBytes):
            return ReferrersPage(_index(manifests), manifests[-1]["digest"])
        manifests.append(descriptor)
        used += size
    return ReferrersPage(_index(manifests), None)


def _index(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
