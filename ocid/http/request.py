"""
The request class and site that stream blob upload bodies to disk as they arrive, and cap
every other body; the site's connections are L{ocid.http.channel.RegistryChannel}s.
"""

from __future__ import annotations

import io
from typing import Any, BinaryIO

from twisted.internet.interfaces import IAddress
from twisted.python.failure import Failure
from twisted.web import http, server
from twisted.web.resource import IResource

from ocid.errors import UNSUPPORTED, RegistryError
from ocid.http.channel import OpenConnections, RegistryChannel, connectionLimit
from ocid.http.responses import errorBody
from ocid.http.uploadbody import UploadSink, uploadSinkFor
from ocid.manifest import MAX_MANIFEST_SIZE
from ocid.storage.uploads import UploadStore

#: The largest non-upload request body we buffer (a manifest, with room for the 413 test).
#: How much of an upload body is read from the socket at a time.
UPLOAD_READ_SIZE = 1024 * 1024
MAX_BUFFERED_BODY = MAX_MANIFEST_SIZE + 1
#: Seconds a client has to send a request's line and headers, from their first byte.
DEFAULT_HEADER_TIMEOUT = 30.0


#: The methods whose bodies may be blob uploads.
_UPLOAD_METHODS = frozenset({b"PATCH", b"PUT", b"POST"})


class _CappedBuffer:
    """
    A request body buffer that keeps at most C{limit} bytes and remembers if more came.
    """

    def __init__(self, limit: int, length: int | None) -> None:
        self.tooLarge = length is not None and length > limit
        self._limit = limit
        self._file: BinaryIO = http._getContentFile(None if self.tooLarge else length)

    def write(self, data: bytes) -> None:
        if self.tooLarge:
            return
        if self._file.tell() + len(data) > self._limit:
            self.tooLarge = True
            self._file.close()
            self._file = http._getContentFile(0)
            return
        self._file.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


class StreamingRequest(server.Request):
    """
    A request whose body, for a blob upload, goes straight into the upload session file
    while being hashed; any other body is buffered up to L{MAX_BUFFERED_BODY} bytes.

    The site must be a L{RegistrySite}.  The request line is read from the channel, which
    has parsed it but not yet handed it over when the headers are complete.
    """

    content: Any

    def gotLength(self, length: int | None) -> None:
        site = getattr(self.channel, "site", None)
        uploads: UploadStore | None = getattr(site, "uploads", None)
        method = getattr(self.channel, "_command", b"").upper()
        sink = None
        if uploads is not None and method in _UPLOAD_METHODS:
            headers = {
                name.lower(): values
                for name, values in self.requestHeaders.getAllRawHeaders()
            }
            sink = uploadSinkFor(
                uploads,
                method,
                getattr(self.channel, "_path", b""),
                headers,
                length,
                site.reactor.seconds(),
            )
        if sink is not None:
            self.content = sink
            self._readLarger()
        elif length == 0:
            # Most requests (every pull) have no body.
            self.content = io.BytesIO()
        else:
            self.content = _CappedBuffer(MAX_BUFFERED_BODY, length)

    def _readLarger(self) -> None:
        """
        Read an upload body from the socket in large pieces: fewer, larger writes and hash
        updates.  The transport's C{bufferSize} is both its read size and the write
        buffer level at which it pauses producers, so it is put back before the response.
        """
        transport = getattr(self.channel, "transport", None)
        if transport is not None and hasattr(transport, "bufferSize"):
            self._savedBufferSize = transport.bufferSize
            transport.bufferSize = UPLOAD_READ_SIZE

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        saved = getattr(self, "_savedBufferSize", None)
        if saved is not None:
            self.channel.transport.bufferSize = saved
        super().requestReceived(command, path, version)

    def connectionLost(self, reason: Failure) -> None:
        content = getattr(self, "content", None)
        if isinstance(content, UploadSink) and not self.finished:
            content.abort()
        super().connectionLost(reason)

    def _handleStar(self) -> None:
        # Twisted answers a request for "*" itself; only OPTIONS may ask for it, and any
        # other method gets the spec's error body with the 405.
        if self.method == b"OPTIONS":
            super()._handleStar()
            return
        error = RegistryError(
            UNSUPPORTED,
            "the request target * is only for OPTIONS",
            status=405,
            headers={b"Allow": b"OPTIONS"},
        )
        self.write(errorBody(self, error))
        self.finish()


class RegistrySite(server.Site):
    """
    A site serving the registry API over L{RegistryChannel}s with L{StreamingRequest}s.

    @ivar uploads: where upload bodies go.
    @ivar headerTimeout: seconds a client has to send each request head.
    @ivar connections: the open connections; beyond C{maxConnections}, the longest-idle
        one is closed to make room.
    """

    protocol = RegistryChannel
    requestFactory = StreamingRequest

    def __init__(
        self,
        resource: IResource,
        uploads: UploadStore,
        reactor: Any,
        headerTimeout: float | None = DEFAULT_HEADER_TIMEOUT,
        maxConnections: int | None = None,
        accessLog: bool = True,
        **kwargs: Any,
    ) -> None:
        """
        @param maxConnections: how many connections to keep open before closing idle
            ones to make room; by default as many as the file descriptor limit allows
            (L{connectionLimit}).
        @param accessLog: whether to log a line for each request.
        @param kwargs: more arguments for L{server.Site}, such as the idle C{timeout}.
        """
        super().__init__(
            resource, reactor=reactor, parsePOSTFormSubmission=False, **kwargs
        )
        self.uploads = uploads
        self.headerTimeout = headerTimeout
        if maxConnections is None:
            maxConnections = connectionLimit()
        self.connections = OpenConnections(maxConnections)
        self.accessLog = accessLog

    def log(self, request: server.Request) -> None:
        if self.accessLog:
            super().log(request)

    def buildProtocol(self, addr: IAddress) -> RegistryChannel:
        channel: RegistryChannel = super().buildProtocol(addr)
        channel.headerTimeout = self.headerTimeout
        channel.connections = self.connections
        return channel
