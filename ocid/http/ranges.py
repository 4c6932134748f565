"""
C{Range} request headers for blob downloads (RFC 9110, section 14), as "Pulling blobs"
asks a registry to support.
"""

from __future__ import annotations

import attrs

#: More ranges than this in one request is treated as no Range header at all.
MAX_RANGES = 32


@attrs.frozen
class ByteRange:
    """
    The inclusive byte range C{first}..C{last}.
    """

    first: int
    last: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1

    def contentRange(self, size: int) -> bytes:
        """
        The C{Content-Range} value of this range of a C{size}-byte representation.
        """
        return b"bytes %d-%d/%d" % (self.first, self.last, size)


class Unsatisfiable(Exception):
    """
    None of the requested ranges overlaps the representation: answer 416.
    """


def parseRange(header: bytes | None, size: int) -> list[ByteRange] | None:
    """
    The satisfiable ranges of C{header} for a representation of C{size} bytes.

    @return: C{None} when the whole representation should be sent: there is no header, it
        is not a valid C{bytes} range set (RFC 9110 says to ignore it then), or it asks for
        more ranges than we serve.
    @raise Unsatisfiable: when the header is valid but no range overlaps the content.
    """
    if header is None:
        return None
    try:
        text = header.decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    unit, sep, spec = text.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    parts = [p.strip() for p in spec.split(",")]
    if not parts or len(parts) > MAX_RANGES:
        return None
    ranges = []
    for part in parts:
        first, dash, last = part.partition("-")
        if not dash:
            return None
        first, last = first.strip(), last.strip()
        if first and not first.isdigit() or last and not last.isdigit():
            return None
        if len(first) > 20 or len(last) > 20:
            # Past any file's size, and past what int() parses: ignore the header.
            return None
        if not first:
            if not last:
                return None
            suffix = int(last)
            if suffix == 0:
                continue
            ranges.append(ByteRange(max(size - suffix, 0), size - 1))
            continue
        start = int(first)
        if last and int(last) < start:
            # "first-pos > last-pos" makes the whole header invalid: ignore it.
            return None
        if start >= size:
            continue
        end = int(last) if last else size - 1
        ranges.append(ByteRange(start, min(end, size - 1)))
    if not ranges or size == 0:
        raise Unsatisfiable()
    return ranges
