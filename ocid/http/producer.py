"""
Streaming blob bytes to a client from a file, never holding more than one chunk in memory.

On a plain TCP or UNIX socket most bytes go out with C{os.sendfile}: the kernel copies them
from the page cache to the socket, and the reactor thread only steers.  Elsewhere they are
read and written in chunks.
"""

from __future__ import annotations

import os
import socket
from typing import Any, BinaryIO

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer, ISSLTransport
from twisted.web.iweb import IRequest
from zope.interface import implementer

#: How much is read from the file and written through the transport at a time.  More than
#: the transport's buffer size (64 KiB), so that each write makes the transport pause us and
#: resume us once the socket has taken everything.
CHUNK_SIZE = 256 * 1024
#: How much one C{sendfile} call may send before the reactor gets the thread back.
SENDFILE_LIMIT = 32 * 1024 * 1024


@attrs.frozen
class Segment:
    """
    Part of a response body: C{prefix} bytes, then C{length} bytes of the file from
    C{offset}.
    """

    prefix: bytes
    offset: int
    length: int


def _transportOf(request: IRequest) -> Any:
    return getattr(getattr(request, "channel", None), "transport", None)


def _sendfileSocket(transport: Any) -> socket.socket | None:
    """
    The socket under C{transport} if bytes may bypass it with C{sendfile}: a plain stream
    socket whose transport shows the buffer state we check before each C{sendfile}.
    """
    if not hasattr(os, "sendfile") or transport is None:
        return None
    if ISSLTransport.providedBy(transport):
        return None
    if not all(hasattr(transport, a) for a in ("dataBuffer", "offset", "_tempDataLen")):
        return None
    getHandle = getattr(transport, "getHandle", None)
    handle = getHandle() if getHandle is not None else None
    if not isinstance(handle, socket.socket) or handle.type != socket.SOCK_STREAM:
        return None
    return handle


def _transportIsEmpty(transport: Any) -> bool:
    """
    Whether C{transport} has no bytes of its own left to send (so that bytes sent past it
    arrive in order).
    """
    return transport._tempDataLen == 0 and len(transport.dataBuffer) == transport.offset


@implementer(IPushProducer)
@attrs.define(eq=False)
class FileSegmentsProducer:
    """
    Write C{segments} of C{file}, then C{trailer}, to C{request}; L{start} returns a
    L{Deferred} that fires when all is written.  The file is closed when done or stopped.

    A push producer: each step writes one chunk through the transport, which pauses us
    while it holds more than its buffer size and resumes us once it has sent everything;
    a resumed step first hands the socket as much as it takes with C{sendfile}.
    """

    file: BinaryIO
    segments: list[Segment]
    request: IRequest
    trailer: bytes = b""
    _done: Deferred[None] | None = None
    _paused: bool = False
    _index: int = 0
    _position: int = 0
    _remaining: int = -1
    _transport: Any = None
    _socket: socket.socket | None = None

    def start(self) -> Deferred[None]:
        """
        Begin producing.
        """
        done = self._done = Deferred(lambda _: self.stopProducing())
        self._transport = _transportOf(self.request)
        self._socket = _sendfileSocket(self._transport)
        self.request.registerProducer(self, True)
        # The headers go out with the first write, through the transport.
        self.request.write(b"")
        self._run(sendfile=False)
        return done

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._run(sendfile=True)

    def stopProducing(self) -> None:
        self._paused = True
        self.file.close()
        self._done = None

    def _run(self, sendfile: bool) -> None:
        try:
            while not self._paused and self._done is not None:
                if self._step(sendfile):
                    self._end(None)
                    return
                sendfile = False
        except OSError as e:
            self._end(e)

    def _step(self, sendfile: bool) -> bool:
        """
        Write the next part; C{True} when everything is written.
        """
        if self._index >= len(self.segments):
            if self.trailer:
                self.request.write(self.trailer)
            return True
        segment = self.segments[self._index]
        if self._remaining < 0:
            self._position = segment.offset
            self._remaining = segment.length
            if segment.prefix:
                self.request.write(segment.prefix)
        if self._remaining > 0:
            if (
                sendfile
                and self._socket is not None
                and self._remaining > CHUNK_SIZE
                and _transportIsEmpty(self._transport)
            ):
                self._sendfile()
            self.file.seek(self._position)
            data = self.file.read(min(CHUNK_SIZE, self._remaining))
            if not data:
                raise OSError("blob file is shorter than expected")
            self._position += len(data)
            self._remaining -= len(data)
            self.request.write(data)
        if self._remaining == 0:
            self._index += 1
            self._remaining = -1
        return False

    def _sendfile(self) -> None:
        """
        Hand the socket as much of the segment as it takes now, keeping one chunk back to
        write through the transport (which is what wakes us up again).
        """
        assert self._socket is not None
        try:
            sent = os.sendfile(
                self._socket.fileno(),
                self.file.fileno(),
                self._position,
                min(self._remaining - CHUNK_SIZE, SENDFILE_LIMIT),
            )
        except BlockingIOError:
            sent = 0
        # What went past the transport still counts for the access log.
        self.request.sentLength += sent  # type: ignore[attr-defined]
        self._position += sent
        self._remaining -= sent

    def _end(self, error: Exception | None) -> None:
        self.file.close()
        self.request.unregisterProducer()
        done, self._done = self._done, None
        if done is None:
            return
        if error is None:
            done.callback(None)
        else:
            done.errback(error)
