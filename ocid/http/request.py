"""
The request class and site that stream blob upload bodies to disk as they arrive, and cap
every other body.
"""

from __future__ import annotations

from typing import Any, BinaryIO

from twisted.python.failure import Failure
from twisted.web import http, server
from twisted.web.resource import IResource

from ocid.http.uploadbody import UploadSink, uploadSinkFor
from ocid.manifest import MAX_MANIFEST_SIZE
from ocid.storage.uploads import UploadStore

#: The largest non-upload request body we buffer (a manifest, with room for the 413 test).
MAX_BUFFERED_BODY = MAX_MANIFEST_SIZE + 1


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
        sink = None
        if uploads is not None:
            headers = {
                name.lower(): values
                for name, values in self.requestHeaders.getAllRawHeaders()
            }
            sink = uploadSinkFor(
                uploads,
                getattr(self.channel, "_command", b"").upper(),
                getattr(self.channel, "_path", b""),
                headers,
                length,
                site.reactor.seconds(),
            )
        if sink is not None:
            self.content = sink
        else:
            self.content = _CappedBuffer(MAX_BUFFERED_BODY, length)

    def connectionLost(self, reason: Failure) -> None:
        content = getattr(self, "content", None)
        if isinstance(content, UploadSink) and not self.finished:
            content.abort()
        super().connectionLost(reason)


class RegistrySite(server.Site):
    """
    A site serving the registry API with L{StreamingRequest}s.

    @ivar uploads: where upload bodies go.
    """

    requestFactory = StreamingRequest

    def __init__(
        self, resource: IResource, uploads: UploadStore, reactor: Any, **kwargs: Any
    ) -> None:
        super().__init__(
            resource, reactor=reactor, parsePOSTFormSubmission=False, **kwargs
        )
        self.uploads = uploads
