"""
Streaming blob bytes to a client from a file, never holding more than one chunk in memory.
"""

from __future__ import annotations

from typing import BinaryIO

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPullProducer
from twisted.web.iweb import IRequest
from zope.interface import implementer

#: How much is read from the file and written to the transport at a time.
CHUNK_SIZE = 256 * 1024


@attrs.frozen
class Segment:
    """
    Part of a response body: C{prefix} bytes, then C{length} bytes of the file from
    C{offset}.
    """

    prefix: bytes
    offset: int
    length: int


@implementer(IPullProducer)
@attrs.define(eq=False)
class FileSegmentsProducer:
    """
    Write C{segments} of C{file}, then C{trailer}, to C{request}, a chunk each time the
    transport asks for more; L{start} returns a L{Deferred} that fires when all is written.
    The file is closed when done or stopped.
    """

    file: BinaryIO
    segments: list[Segment]
    request: IRequest
    trailer: bytes = b""
    _done: Deferred[None] | None = None
    _index: int = 0
    _remaining: int = -1

    def start(self) -> Deferred[None]:
        """
        Begin producing.
        """
        self._done = Deferred(lambda _: self.stopProducing())
        self.request.registerProducer(self, False)
        return self._done

    def resumeProducing(self) -> None:
        while self._index < len(self.segments):
            segment = self.segments[self._index]
            if self._remaining < 0:
                self.file.seek(segment.offset)
                self._remaining = segment.length
                if segment.prefix:
                    self.request.write(segment.prefix)
            if self._remaining > 0:
                data = self.file.read(min(CHUNK_SIZE, self._remaining))
                if not data:
                    self._fail(OSError("blob file is shorter than expected"))
                    return
                self._remaining -= len(data)
                self.request.write(data)
                if self._remaining > 0:
                    return
            self._index += 1
            self._remaining = -1
        if self.trailer:
            self.request.write(self.trailer)
        self._finish()

    def _finish(self) -> None:
        self.file.close()
        self.request.unregisterProducer()
        done, self._done = self._done, None
        if done is not None:
            done.callback(None)

    def _fail(self, error: Exception) -> None:
        self.file.close()
        self.request.unregisterProducer()
        done, self._done = self._done, None
        if done is not None:
            done.errback(error)

    def stopProducing(self) -> None:
        self.file.close()
        self._done = None
