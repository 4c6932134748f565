"""
Hashing upload bytes in a thread of its own (L{ocid.storage.hashing}) gives exactly the
digests hashing them inline gives.
"""

from __future__ import annotations

import hashlib
import os
import random

from ocid.storage.hashing import MAX_PENDING, OFFLOAD_THRESHOLD, HashingThread


def _pieces(seed: int) -> list[bytes]:
    rng = random.Random(seed)
    sizes = [1, 100, OFFLOAD_THRESHOLD - 1, OFFLOAD_THRESHOLD, 1 << 20, 7, 300_000]
    return [os.urandom(rng.choice(sizes)) for _ in range(60)]


def test_sameDigestAsInline() -> None:
    """
    Small updates (inline) and large ones (in the thread), interleaved, hash to the
    digest of all the bytes in order, for sha256 and sha512.
    """
    worker = HashingThread()
    for algorithm in ("sha256", "sha512"):
        pieces = _pieces(1)
        offloaded = worker.hasher(hashlib.new(algorithm))
        for piece in pieces:
            offloaded.update(piece)
        assert offloaded.hexdigest() == hashlib.new(algorithm, b"".join(pieces)).hexdigest()


def test_copyMidStream() -> None:
    """
    A copy taken mid-stream holds exactly the bytes submitted before it, and goes on
    independently of the original (a session rolls back to such a copy).
    """
    worker = HashingThread()
    first, second = _pieces(2), _pieces(3)
    original = worker.hasher(hashlib.sha256())
    for piece in first:
        original.update(piece)
    mark = original.copy()
    for piece in second:
        original.update(piece)
    assert mark.hexdigest() == hashlib.sha256(b"".join(first)).hexdigest()
    assert original.hexdigest() == hashlib.sha256(b"".join(first + second)).hexdigest()


def test_manyHashersShareTheThread() -> None:
    """
    Several sessions' hashers interleave in the one thread without mixing their bytes.
    """
    worker = HashingThread()
    streams = {i: _pieces(10 + i) for i in range(5)}
    hashers = {i: worker.hasher(hashlib.sha256()) for i in streams}
    for round_ in range(60):
        for i, pieces in streams.items():
            hashers[i].update(pieces[round_])
    for i, pieces in streams.items():
        assert hashers[i].hexdigest() == hashlib.sha256(b"".join(pieces)).hexdigest()


def test_backlogHashesInline() -> None:
    """
    Past L{MAX_PENDING} bytes waiting, updates run inline (after the backlog), so the
    queue cannot grow without bound; the digest is still right.
    """
    worker = HashingThread()
    hasher = worker.hasher(hashlib.sha256())
    piece = os.urandom(4 * 1024 * 1024)
    count = MAX_PENDING // len(piece) + 4
    for _ in range(count):
        hasher.update(piece)
    assert hasher.hexdigest() == hashlib.sha256(piece * count).hexdigest()
