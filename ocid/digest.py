"""
Content digests (OCI Image Spec, "Descriptor" > "Digests").
"""

from __future__ import annotations

import hashlib
import re
from typing import Protocol

import attrs

from ocid.errors import DIGEST_INVALID, RegistryError

# The descriptor grammar: algorithm ":" encoded.
_DIGEST = re.compile(r"^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$")

#: The registered algorithms we implement, with the exact form of their encoded part.
ALGORITHMS: dict[str, re.Pattern[str]] = {
    "sha256": re.compile(r"^[a-f0-9]{64}$"),
    "sha512": re.compile(r"^[a-f0-9]{128}$"),
}


class Hasher(Protocol):
    """
    What C{hashlib} hash objects give us.
    """

    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...

    def copy(self) -> Hasher: ...


@attrs.frozen(order=True, cache_hash=True)
class Digest:
    """
    A validated content digest such as C{sha256:9f86d0...}.

    @ivar algorithm: C{"sha256"} or C{"sha512"}.
    @ivar hex: the lowercase hexadecimal encoded part.
    """

    algorithm: str
    hex: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        """
        Parse and validate C{text}, raising L{RegistryError} C{DIGEST_INVALID} (400) for
        anything that is not a well-formed digest of an algorithm we support.
        """
        match = _DIGEST.match(text)
        if match is None:
            raise RegistryError(DIGEST_INVALID, "invalid digest", detail={"digest": text})
        algorithm, encoded = match.groups()
        pattern = ALGORITHMS.get(algorithm)
        if pattern is None:
            raise RegistryError(
                DIGEST_INVALID,
                "unsupported digest algorithm",
                detail={"digest": text, "supported": sorted(ALGORITHMS)},
            )
        if pattern.match(encoded) is None:
            raise RegistryError(
                DIGEST_INVALID,
                f"invalid {algorithm} digest",
                detail={"digest": text},
            )
        return cls(algorithm, encoded)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        """
        The digest of C{data} under C{algorithm}.
        """
        h = newHasher(algorithm)
        h.update(data)
        return cls(algorithm, h.hexdigest())

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def newHasher(algorithm: str) -> Hasher:
    """
    A fresh incremental hash object for C{algorithm}.
    """
    if algorithm not in ALGORITHMS:
        raise RegistryError(
            DIGEST_INVALID,
            "unsupported digest algorithm",
            detail={"algorithm": algorithm, "supported": sorted(ALGORITHMS)},
        )
    return hashlib.new(algorithm)
