"""
HTTP/1.1 over a bare socket, for tests that must send exactly the bytes they mean (a client
library would normalise the URL, refuse bad headers or fix a wrong Content-Length).
Loopback only.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable
from typing import Any

import attrs

HOST = "127.0.0.1"


@attrs.frozen
class Response:
    """
    A parsed HTTP response.

    @ivar status: the status code, or 0 if the server closed without answering.
    @ivar headers: lowercased header names to their values.
    """

    status: int
    reason: bytes
    headers: dict[bytes, list[bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        """
        The first value of header C{name}, if any.
        """
        values = self.headers.get(name.lower())
        return values[0] if values else None

    def json(self) -> Any:
        """
        The body parsed as JSON.
        """
        return json.loads(self.body)

    def errorCodes(self) -> list[str]:
        """
        The C{code}s of the spec's error body ("Error Codes"), or C{[]} if the body is not
        one.
        """
        try:
            errors = self.json()["errors"]
            return [e["code"] for e in errors]
        except (ValueError, KeyError, TypeError):
            return []


def parseResponse(data: bytes, head: bool = False) -> Response:
    """
    Parse one response from C{data} (everything the server sent before closing).

    @param head: the request was a C{HEAD}: the response has no body.
    """
    if not data:
        return Response(0, b"", {}, b"")
    headText, _, rest = data.partition(b"\r\n\r\n")
    lines = headText.split(b"\r\n")
    _version, status, reason = (lines[0].split(b" ", 2) + [b""])[:3]
    headers: dict[bytes, list[bytes]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    body = b"" if head else rest
    length = headers.get(b"content-length")
    if length and not head:
        body = rest[: int(length[0])]
    return Response(int(status), reason, headers, body)


def exchange(port: int, data: bytes, timeout: float = 30.0, head: bool = False) -> Response:
    """
    Send C{data} (one or more whole requests, the last asking C{Connection: close}) to
    C{127.0.0.1:port} and parse the first response, reading until the server closes.
    """
    received = b""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            # The server refused the request before reading all of it; its answer may
            # still be waiting.
            pass
        try:
            while chunk := s.recv(1024 * 1024):
                received += chunk
        except ConnectionResetError:
            pass
    return parseResponse(received, head)


def request(
    port: int,
    method: bytes,
    target: bytes,
    headers: Iterable[tuple[bytes, bytes]] = (),
    body: bytes = b"",
    contentLength: bytes | None = None,
    timeout: float = 30.0,
) -> Response:
    """
    Send one request with exactly this method, target and headers (plus C{Host},
    C{Connection: close} and C{Content-Length}, unless C{contentLength} gives its raw
    value) and return the response.
    """
    return exchange(port, build(method, target, headers, body, contentLength), timeout,
                    head=method == b"HEAD")


def build(
    method: bytes,
    target: bytes,
    headers: Iterable[tuple[bytes, bytes]] = (),
    body: bytes = b"",
    contentLength: bytes | None = None,
    close: bool = True,
) -> bytes:
    """
    The bytes of one request.
    """
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: " + HOST.encode()]
    if close:
        lines.append(b"Connection: close")
    lines.extend(name + b": " + value for name, value in headers)
    length = contentLength if contentLength is not None else b"%d" % len(body)
    lines.append(b"Content-Length: " + length)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
