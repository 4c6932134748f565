"""
Hashing upload bytes on another core: C{hashlib} releases the GIL while it hashes a large
buffer, so a thread that does nothing else keeps the reactor thread free for the network
and the file while the digest keeps up.
"""

from __future__ import annotations

import queue
import threading

import attrs

from ocid.digest import Hasher

#: Updates smaller than this are not worth a trip to the thread (hashlib holds the GIL
#: for buffers under 2 KiB anyway).
OFFLOAD_THRESHOLD = 16 * 1024
#: Bytes a hasher may have waiting in the thread; past this, updates run inline, which
#: slows the reactor down to the hashing speed instead of queueing without bound.
MAX_PENDING = 64 * 1024 * 1024


@attrs.define(eq=False)
class HashingThread:
    """
    One daemon thread running hash updates in the order they were submitted.
    """

    _queue: queue.SimpleQueue[tuple[OffloadedHasher, bytes]] = attrs.field(
        factory=queue.SimpleQueue
    )
    _thread: threading.Thread | None = None
    _lock: threading.Lock = attrs.field(factory=threading.Lock)

    def submit(self, hasher: OffloadedHasher, data: bytes) -> None:
        """
        Run C{hasher}'s update with C{data} in the thread.
        """
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="ocid-hashing", daemon=True
                )
                self._thread.start()
        self._queue.put((hasher, data))

    def _run(self) -> None:
        while True:
            hasher, data = self._queue.get()
            hasher._apply(data)

    def hasher(self, inner: Hasher) -> OffloadedHasher:
        """
        A hasher whose large updates run in this thread.
        """
        return OffloadedHasher(inner, self)


@attrs.define(eq=False)
class OffloadedHasher:
    """
    A L{Hasher} whose large updates run in a L{HashingThread}; reading it (or copying it)
    first waits for the updates submitted so far.  One thread uses it at a time.
    """

    _inner: Hasher
    _worker: HashingThread
    _pending: int = 0
    _pendingBytes: int = 0
    _done: threading.Condition = attrs.field(factory=threading.Condition)

    def update(self, data: bytes, /) -> None:
        if len(data) < OFFLOAD_THRESHOLD or self._pendingBytes > MAX_PENDING:
            self._wait()
            self._inner.update(data)
            return
        with self._done:
            self._pending += 1
            self._pendingBytes += len(data)
        self._worker.submit(self, data)

    def _apply(self, data: bytes) -> None:
        self._inner.update(data)
        with self._done:
            self._pending -= 1
            self._pendingBytes -= len(data)
            if not self._pending:
                self._done.notify_all()

    def _wait(self) -> None:
        with self._done:
            while self._pending:
                self._done.wait()

    def hexdigest(self) -> str:
        self._wait()
        return self._inner.hexdigest()

    def copy(self) -> OffloadedHasher:
        self._wait()
        return OffloadedHasher(self._inner.copy(), self._worker)
