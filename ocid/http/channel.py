"""
The HTTP/1.1 connection of the registry: firm limits on what a client may send before its
request is complete (request line and header sizes, and the time to send them), the spec's
JSON error body on every request refused before the API sees it, and a cap on open
connections that closes the longest-waiting idle one to make room.
"""

from __future__ import annotations

import json
import resource
from typing import Any

import attrs
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http

from ocid.errors import UNSUPPORTED, RegistryError
from ocid.http.uploadbody import UploadSink

log = Logger()

#: The bytes that may begin a request line: those of a method token (RFC 9110, 5.6.2).
_TOKEN_CHARACTERS = frozenset(
    bytes([c])
    for c in b"!#$%&'*+-.^_`|~0123456789"
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

#: File descriptors kept back from connections for blob files, the journal and the like.
RESERVED_DESCRIPTORS = 64


def connectionLimit() -> int:
    """
    How many connections this process can hold open without running out of file
    descriptors: each may hold a second one (a blob being sent, an upload being written)
    beside its socket.
    """
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 65536
    return max(16, (soft - RESERVED_DESCRIPTORS) // 2)


@attrs.define(eq=False)
class OpenConnections:
    """
    The open connections of a site, and which of them wait for a request (idle between
    requests, or still receiving a request head) in the order they began waiting.

    Twisted accepts and at once closes every connection once the process is out of file
    descriptors, so enough idle clients would shut everybody else out until the idle
    timeout; instead, once more than C{limit} connections are open, the connection that
    has been waiting longest is closed.  Connections receiving a body or a response are
    never closed to make room.

    @ivar limit: the most connections kept open, or C{None} for no limit.
    """

    limit: int | None
    _open: set[RegistryChannel] = attrs.field(factory=set)
    _waiting: dict[RegistryChannel, None] = attrs.field(factory=dict)

    def __len__(self) -> int:
        return len(self._open)

    def opened(self, channel: RegistryChannel) -> None:
        """
        C{channel} connected: it waits for its first request.
        """
        self._open.add(channel)
        while self.limit is not None and len(self._open) > self.limit and self._waiting:
            oldest = next(iter(self._waiting))
            self._forget(oldest)
            log.info(
                "closing idle connection from {peer} to make room (limit {limit})",
                peer=str(oldest.transport.getPeer()),
                limit=self.limit,
            )
            oldest.closeToMakeRoom()
        self.waiting(channel)

    def waiting(self, channel: RegistryChannel) -> None:
        """
        C{channel} is between requests (or receiving a request head).
        """
        if channel in self._open:
            self._waiting.pop(channel, None)
            self._waiting[channel] = None

    def busy(self, channel: RegistryChannel) -> None:
        """
        C{channel} has a request in progress.
        """
        self._waiting.pop(channel, None)

    def closing(self, channel: RegistryChannel) -> None:
        """
        C{channel} is closing of its own accord: there is nothing to close to make room.
        """
        self._waiting.pop(channel, None)

    def closed(self, channel: RegistryChannel) -> None:
        """
        C{channel} disconnected.
        """
        self._forget(channel)

    def _forget(self, channel: RegistryChannel) -> None:
        self._open.discard(channel)
        self._waiting.pop(channel, None)


class RegistryChannel(http.HTTPChannel):
    """
    An HTTP/1.1 connection with firm limits on the request head, answering every request
    it refuses before the API sees it with the spec's JSON error body.

    Twisted's idle timeout starts again with every byte received, so on its own it lets a
    client that drips a request head one byte at a time hold a connection for ever.  Here
    the head of each request (request line and headers) must arrive within
    C{headerTimeout} seconds of its first byte, or the connection is answered 408 and
    closed.  Bytes that cannot begin a request (a TLS handshake, say) are answered 400 at
    once.

    @ivar headerTimeout: seconds allowed for a request head, or C{None} for no limit (set
        from the site).
    @ivar connections: the site's open connections, told when this one waits for a
        request and when it is busy with one (set from the site).
    @ivar MAX_LENGTH: the longest request line or header line (a longer request line is
        answered 414, a longer header line 431).
    @ivar totalHeadersSize: the most bytes of request line and headers (431 beyond).
    @ivar maxHeaders: the most header lines (431 beyond).
    """

    MAX_LENGTH = 8 * 1024
    totalHeadersSize = 16 * 1024
    maxHeaders = 100
    headerTimeout: float | None = None
    connections: OpenConnections | None = None

    _headerDeadline: IDelayedCall | None = None
    _headLines = 0
    #: Some of the current request head has arrived.
    _headStarted = False
    #: A refusal was sent and the connection is closing: ignore whatever else arrives.
    _refused = False

    def connectionMade(self) -> None:
        super().connectionMade()
        if self.connections is not None:
            self.connections.opened(self)

    def dataReceived(self, data: bytes) -> None:
        if self._refused:
            return
        if self.line_mode and not self._headStarted:
            # Empty lines may precede a request line (RFC 9112, section 2.2).
            first = data.lstrip(b"\r\n")[:1]
            if first:
                self._headStarted = True
                if first not in _TOKEN_CHARACTERS:
                    # Not HTTP at all, such as a TLS ClientHello from a client trying
                    # HTTPS first: say so now rather than wait for a line that never
                    # comes.
                    self._refuse(400, b"Bad Request", "not an HTTP/1.1 request")
                    return
                if self.headerTimeout is not None:
                    # The first bytes of a request head: start its deadline.
                    self._headerDeadline = self.callLater(
                        self.headerTimeout, self._headTimedOut
                    )
        super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        self._headLines += 1
        super().lineReceived(line)

    def allHeadersReceived(self) -> None:
        self._cancelHeaderDeadline()
        self._headLines = 0
        self._headStarted = False
        if self.connections is not None:
            self.connections.busy(self)
        super().allHeadersReceived()

    def requestDone(self, request: http.Request) -> None:
        super().requestDone(request)
        if self.line_mode and self.connections is not None:
            # Waiting for the next request (or reading its head).
            self.connections.waiting(self)

    def connectionLost(self, reason: Failure) -> None:
        self._cancelHeaderDeadline()
        if self.connections is not None:
            self.connections.closed(self)
        super().connectionLost(reason)

    def closeToMakeRoom(self) -> None:
        """
        Close this connection, which waits for a request, because too many are open.
        """
        self._closing()
        # Close as Twisted closes idle connections, aborting if the client does not let go.
        self.timeoutConnection()

    def _closing(self) -> None:
        self._cancelHeaderDeadline()
        self._refused = True
        if self.connections is not None:
            self.connections.closing(self)

    def _cancelHeaderDeadline(self) -> None:
        deadline, self._headerDeadline = self._headerDeadline, None
        if deadline is not None and deadline.active():
            deadline.cancel()

    def _headTimedOut(self) -> None:
        self._headerDeadline = None
        self._closing()
        log.info(
            "closing connection from {peer}: request head incomplete after {timeout} s",
            peer=str(self.transport.getPeer()),
            timeout=self.headerTimeout,
        )
        self._writeRefusal(408, b"Request Timeout", "request head took too long to arrive")
        # Close as Twisted closes idle connections, aborting if the client does not let go.
        self.timeoutConnection()

    def lineLengthExceeded(self, line: bytes) -> None:
        if self._headLines == 0:
            self._refuse(414, b"URI Too Long", "request line too long",
                         limit=self.MAX_LENGTH)
        else:
            self._refuse(431, b"Request Header Fields Too Large", "header line too long",
                         limit=self.MAX_LENGTH)

    def _respondToBadRequestAndDisconnect(self) -> None:
        # Twisted's single exit for requests it cannot parse: a malformed request line,
        # header or Content-Length, a malformed chunked body, too many headers, headers
        # too large.
        if self._receivedHeaderSize > self.totalHeadersSize:
            self._refuse(431, b"Request Header Fields Too Large", "request head too large",
                         limit=self.totalHeadersSize)
        elif self._receivedHeaderCount > self.maxHeaders:
            self._refuse(431, b"Request Header Fields Too Large", "too many headers",
                         limit=self.maxHeaders)
        else:
            self._refuse(400, b"Bad Request", "malformed HTTP request")

    def _refuse(self, status: int, reason: bytes, message: str, **detail: Any) -> None:
        """
        Answer C{status} with the spec's error body and close the connection.  An upload
        body this request had begun to write (say, before a malformed chunk) is taken
        back: a malformed request changes nothing stored.
        """
        self._closing()
        if self.requests:
            content = getattr(self.requests[-1], "content", None)
            if isinstance(content, UploadSink):
                content.discard()
        self._writeRefusal(status, reason, message, **detail)
        self.loseConnection()

    def _writeRefusal(self, status: int, reason: bytes, message: str, **detail: Any) -> None:
        error = RegistryError(UNSUPPORTED, message, detail=detail or None, status=status)
        body = json.dumps(error.body(), separators=(",", ":")).encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\n"
            b"Content-Type: application/json\r\n"
            b"Content-Length: %d\r\n"
            b"Connection: close\r\n"
            b"\r\n%s" % (status, reason, len(body), body)
        )
