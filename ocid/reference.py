"""
Repository names and tags, validated with the grammars of the OCI Distribution Spec
("Pulling manifests") before they are used anywhere else.
"""

from __future__ import annotations

import re

from ocid.digest import Digest
from ocid.errors import MANIFEST_INVALID, NAME_INVALID, RegistryError

_NAME = re.compile(
    r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$"
)
_TAG = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")

#: Clients limit host + "/" + name to 255 characters; we refuse names that could not fit.
MAX_NAME_LENGTH = 255


def validateName(name: str) -> str:
    """
    Return C{name} if it is a valid repository name, else raise C{NAME_INVALID}.
    """
    if len(name) > MAX_NAME_LENGTH or _NAME.match(name) is None:
        raise RegistryError(
            NAME_INVALID, "invalid repository name", detail={"name": name[:300]}
        )
    return name


def isTag(text: str) -> bool:
    """
    Whether C{text} matches the tag grammar.
    """
    return _TAG.match(text) is not None


def validateTag(tag: str) -> str:
    """
    Return C{tag} if it matches the tag grammar, else raise C{MANIFEST_INVALID} (400): a
    reference that is neither a digest nor a valid tag can name no manifest.
    """
    if not isTag(tag):
        raise RegistryError(MANIFEST_INVALID, "invalid tag", detail={"tag": tag[:300]})
    return tag


def parseReference(reference: str) -> str | Digest:
    """
    Parse the C{<tag-or-digest>} of a manifest URL: a L{Digest} if it has a colon, else a tag.
    """
    if ":" in reference:
        return Digest.parse(reference)
    return validateTag(reference)
