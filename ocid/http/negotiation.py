"""
Choosing what to serve for a manifest request from its C{Accept} headers (the spec's
"Content Negotiation" and "Pulling manifests").
"""

from __future__ import annotations

from collections.abc import Iterable

#: C{Accept} values that accept any manifest.  The content negotiation table gives
#: C{application/json} the same answer as no header and C{*/*} (what pre-v2 clients send).
_ANYTHING = frozenset({"*/*", "application/*", "application/json"})


def acceptedTypes(headers: Iterable[bytes] | None) -> set[str] | None:
    """
    The media types the client accepts, from every C{Accept} header line it sent; C{None}
    when it accepts anything (no header, a wildcard, or C{application/json}).
    """
    if not headers:
        return None
    accepted: set[str] = set()
    for line in headers:
        for item in line.decode("latin-1").split(","):
            mediaType, *params = item.split(";")
            mediaType = mediaType.strip().lower()
            if not mediaType:
                continue
            if any(_isZeroQuality(p) for p in params):
                continue
            if mediaType in _ANYTHING:
                return None
            accepted.add(mediaType)
    return accepted or None


def _isZeroQuality(parameter: str) -> bool:
    name, _, value = parameter.partition("=")
    if name.strip().lower() != "q":
        return False
    try:
        return float(value.strip()) == 0
    except ValueError:
        return False
