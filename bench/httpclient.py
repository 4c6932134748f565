"""
A small, fast HTTP/1.1 keep-alive client over a raw socket, for loopback use only.

The stdlib C{http.client} spends a noticeable amount of CPU per request, and the
benchmark shares two cores with the daemons it measures, so this client keeps the
per-request work to a minimum: one C{sendall} for the head (and small bodies),
C{socket.sendfile} for bodies that come from files, and C{recv_into} a reusable
buffer for responses.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO
from urllib.parse import urlsplit

LOOPBACK = "127.0.0.1"
RECV_SIZE = 1 << 20
MAX_HEAD = 1 << 16


class HTTPError(Exception):
    """
    The server answered something this client cannot make sense of, or an unexpected
    status.
    """


@dataclass
class Response:
    """
    One HTTP response.

    @ivar status: the status code.
    @ivar headers: header names in lower case, to their (last) value.
    @ivar body: the body, unless it was streamed to a sink.
    @ivar bodyLength: how many body bytes arrived.
    """

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    bodyLength: int = 0


@dataclass
class FileBody:
    """
    A request body: C{length} bytes at C{offset} of the open file's first C{fileSize}
    bytes followed by C{suffix}. The file part goes out with C{sendfile}.
    """

    file: BinaryIO
    offset: int
    length: int
    fileSize: int = 1 << 62
    suffix: bytes = b""

    def send(self, sock: socket.socket) -> None:
        """
        Send this body on C{sock}.
        """
        end = self.offset + self.length
        fileEnd = min(end, self.fileSize)
        if self.offset < fileEnd:
            count = fileEnd - self.offset
            sent = sock.sendfile(self.file, self.offset, count)
            if sent != count:
                raise HTTPError(f"sent {sent} of {count} body bytes from the file")
        if end > self.fileSize:
            start = max(self.offset, self.fileSize) - self.fileSize
            sock.sendall(self.suffix[start : end - self.fileSize])


def localTarget(location: str) -> str:
    """
    The path and query of a C{Location} header, which may be absolute or relative.

    @raise HTTPError: if an absolute location points anywhere but the loopback address.
    """
    parts = urlsplit(location)
    if parts.hostname not in (None, LOOPBACK, "localhost"):
        raise HTTPError(f"refusing to follow a location off loopback: {location!r}")
    return parts.path + ("?" + parts.query if parts.query else "")


class Connection:
    """
    One keep-alive HTTP/1.1 connection to C{127.0.0.1:port}, reconnecting on demand.
    """

    def __init__(self, port: int, timeout: float = 120.0) -> None:
        self.port = port
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.buffer = bytearray(RECV_SIZE)
        self.view = memoryview(self.buffer)
        self.pending = b""
        self.hostHeader = f"Host: {LOOPBACK}:{port}\r\n".encode()

    def connect(self) -> socket.socket:
        """
        The connected socket, connecting if there is none.
        """
        if self.sock is None:
            sock = socket.create_connection((LOOPBACK, self.port), timeout=self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock = sock
            self.pending = b""
        return self.sock

    def close(self) -> None:
        """
        Close the connection; the next request opens a new one.
        """
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.pending = b""

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        target: str,
        headers: dict[str, str] | None = None,
        body: bytes | FileBody = b"",
        sink: Callable[[memoryview], None] | None = None,
    ) -> Response:
        """
        Send one request and read its whole response.

        @param body: the request body, as bytes or a slice of a file (sent with
            C{sendfile}, never read into memory here).
        @param sink: if given, receives the response body piece by piece instead of
            it being collected in L{Response.body}.
        """
        sock = self.connect()
        length = body.length if isinstance(body, FileBody) else len(body)
        lines = [f"{method} {target} HTTP/1.1\r\n".encode(), self.hostHeader]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}\r\n".encode())
        if length or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {length}\r\n".encode())
        lines.append(b"\r\n")
        head = b"".join(lines)
        try:
            if isinstance(body, FileBody):
                sock.sendall(head)
                body.send(sock)
            else:
                sock.sendall(head + body if length < 65536 else head)
                if length >= 65536:
                    sock.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            # The server may have answered early (an error) and closed; read it.
            pass
        return self.readResponse(method == "HEAD", sink)

    def recvSome(self) -> bytes:
        """
        Whatever bytes arrive next (buffered leftovers first).

        @raise HTTPError: if the connection closed.
        """
        if self.pending:
            data, self.pending = self.pending, b""
            return data
        assert self.sock is not None
        n = self.sock.recv_into(self.buffer)
        if not n:
            self.close()
            raise HTTPError("connection closed by the server")
        return bytes(self.view[:n])

    def readResponse(
        self, isHead: bool, sink: Callable[[memoryview], None] | None
    ) -> Response:
        """
        Read one response: head, then a body framed by length, chunks or close.
        """
        data = b""
        while True:
            data += self.recvSome()
            end = data.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(data) > MAX_HEAD:
                raise HTTPError("response head too large")
        headLines = data[:end].decode("latin-1").split("\r\n")
        rest = data[end + 4 :]
        statusParts = headLines[0].split(" ", 2)
        if len(statusParts) < 2 or not statusParts[0].startswith("HTTP/1."):
            raise HTTPError(f"bad status line {headLines[0]!r}")
        response = Response(int(statusParts[1]))
        for line in headLines[1:]:
            name, _, value = line.partition(":")
            response.headers[name.strip().lower()] = value.strip()
        collected: list[bytes] = []
        emit = sink or (lambda piece: collected.append(bytes(piece)))
        noBody = isHead or response.status in (204, 304) or response.status < 200
        if noBody:
            self.pending = rest
        elif "chunked" in response.headers.get("transfer-encoding", "").lower():
            response.bodyLength = self.readChunked(rest, emit)
        elif "content-length" in response.headers:
            response.bodyLength = self.readLength(
                rest, int(response.headers["content-length"]), emit
            )
        else:
            response.bodyLength = self.readToClose(rest, emit)
        if sink is None:
            response.body = b"".join(collected)
        if response.headers.get("connection", "").lower() == "close":
            self.close()
        return response

    def readLength(
        self, rest: bytes, length: int, emit: Callable[[memoryview], None]
    ) -> int:
        """
        Read a body of exactly C{length} bytes, C{rest} being its first bytes.
        """
        if len(rest) >= length:
            emit(memoryview(rest)[:length])
            self.pending = rest[length:]
            return length
        if rest:
            emit(memoryview(rest))
        remaining = length - len(rest)
        assert self.sock is not None
        while remaining:
            n = self.sock.recv_into(self.buffer, min(remaining, RECV_SIZE))
            if not n:
                self.close()
                raise HTTPError(f"connection closed with {remaining} body bytes due")
            emit(self.view[:n])
            remaining -= n
        return length

    def readToClose(self, rest: bytes, emit: Callable[[memoryview], None]) -> int:
        """
        Read a body that ends when the server closes the connection.
        """
        total = len(rest)
        if rest:
            emit(memoryview(rest))
        assert self.sock is not None
        while True:
            n = self.sock.recv_into(self.buffer)
            if not n:
                break
            emit(self.view[:n])
            total += n
        self.close()
        return total

    def readChunked(self, rest: bytes, emit: Callable[[memoryview], None]) -> int:
        """
        Read a chunked body, C{rest} being its first bytes.
        """
        data = rest
        total = 0
        while True:
            while b"\r\n" not in data:
                data += self.recvSome()
            sizeLine, _, data = data.partition(b"\r\n")
            size = int(sizeLine.split(b";")[0], 16)
            if size == 0:
                while not (data.startswith(b"\r\n") or b"\r\n\r\n" in data):
                    data += self.recvSome()
                if data.startswith(b"\r\n"):
                    self.pending = data[2:]
                else:
                    self.pending = data[data.index(b"\r\n\r\n") + 4 :]
                return total
            while len(data) < size + 2:
                if len(data) > size:
                    data += self.recvSome()
                    continue
                if data:
                    emit(memoryview(data))
                    size -= len(data)
                    total += len(data)
                    data = b""
                data = self.recvSome()
            emit(memoryview(data)[:size])
            total += size
            data = data[size + 2 :]
