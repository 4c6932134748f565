"""
Routing blob upload request bodies straight into their upload session's file as the bytes
arrive, hashing them on the way, instead of letting L{twisted.web.http.Request} buffer the
whole body first.

L{uploadSinkFor} looks at a request once its headers are in (from
L{ocid.http.request.StreamingRequest.gotLength}) and, for a blob upload (C{PATCH} or C{PUT}
of an upload session, or a single-C{POST} monolithic upload), returns an L{UploadSink} to
stand in as C{request.content}.  Any check that can fail before a byte is written
(unknown session, a C{Content-Range} that does not start where the session ends) is made
there; the body of a refused request is discarded and the route answers the error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import attrs
from twisted.logger import Logger

from ocid.digest import Digest
from ocid.errors import (
    BLOB_UPLOAD_INVALID,
    BLOB_UPLOAD_UNKNOWN,
    DIGEST_INVALID,
    SIZE_INVALID,
    RegistryError,
    StorageError,
    storageError,
)
from ocid.reference import validateName
from ocid.storage.uploads import UploadSession, UploadStore, isSessionID

log = Logger()

_SESSION_PATH = re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/(?P<session>[^/]+)$")
_START_PATH = re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/?$")
_CONTENT_RANGE = re.compile(
    r"^(?:bytes[ =])?([0-9]{1,19})-([0-9]{1,19})(?:/([0-9]{1,19}|\*))?$"
)


def uploadLocation(session: UploadSession) -> bytes:
    """
    The C{<blob-push-location>} of C{session}.
    """
    return f"/v2/{session.repository}/blobs/uploads/{session.id}".encode()


def rangeHeader(size: int) -> bytes:
    """
    The C{Range} header value for a session holding C{size} bytes ("0-<last byte>", which
    is "0-0" for an empty session, as distribution answers).
    """
    return b"0-%d" % max(size - 1, 0)


def outOfOrder(session: UploadSession, detail: Any) -> RegistryError:
    """
    The 416 for a chunk that does not start where C{session} ends.
    """
    return RegistryError(
        BLOB_UPLOAD_INVALID,
        "chunk out of order",
        detail=detail,
        status=416,
        headers={
            b"Location": uploadLocation(session),
            b"Range": rangeHeader(session.size),
            b"Docker-Upload-UUID": session.id.encode(),
        },
    )


@attrs.define(eq=False)
class UploadSink:
    """
    The C{request.content} of a blob upload: bytes written to it go to the session's file.

    The sink owns the session's writer until L{finish} hands the session to the route.  If
    the disk refuses a write (C{ENOSPC}, C{EIO}), the session is rolled back to where this
    request found it and the rest of the body is discarded; L{finish} then raises the 5xx.
    If the request ends any other way (the client went away mid-body, or the route never
    asked for the body), the bytes that arrived are kept so the upload can resume.

    @ivar session: the session receiving the bytes, or C{None} if the request was refused
        or the session was handed on.
    @ivar error: why the request was refused; its body is then discarded.
    @ivar received: how many body bytes arrived.
    @ivar ephemeral: the session was created for this request alone (a single-POST upload)
        and goes away with it unless it completes.
    """

    session: UploadSession | None
    error: RegistryError | None = None
    received: int = 0
    ephemeral: bool = False
    _uploads: UploadStore | None = None

    def write(self, data: bytes) -> None:
        self.received += len(data)
        if self.error is None and self.session is not None:
            try:
                self.session.write(data)
            except OSError as e:
                self._failed(e)

    # What twisted.web.http.Request does with its content after the body is complete.
    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def read(self, size: int = -1) -> bytes:
        return b""

    def tell(self) -> int:
        return self.received

    def close(self) -> None:
        """
        The request is done with its body (L{twisted.web.http.Request} closes its content
        when it finishes): release the session if the route did not take it.
        """
        self._release()

    def abort(self) -> None:
        """
        The client went away mid-body: keep what arrived, so the session can resume, unless
        the session existed only for this request.
        """
        self._release()

    def discard(self) -> None:
        """
        The request turned out malformed mid-body: take back what it wrote, as if it had
        never arrived.
        """
        session, self.session = self.session, None
        if session is None:
            return
        try:
            session.rollback()
        except OSError:
            self._remove(session)
            return
        if self.ephemeral:
            self._remove(session)

    def finish(self) -> UploadSession:
        """
        The body is complete: flush it and hand over the session, or raise the error the
        request was refused with (a 5xx if the disk refused the bytes).
        """
        if self.error is not None:
            self._release()
            raise self.error
        session = self.session
        assert session is not None
        try:
            session.closeWriter()
        except OSError as e:
            self._failed(e)
            assert self.error is not None
            raise self.error from e
        self.session = None
        if self._uploads is not None:
            self._uploads.touch(session)
        return session

    def _failed(self, error: OSError) -> None:
        """
        The disk refused this request's bytes: answer a 5xx, and roll the session back to
        its state before the request (removing it if even that fails, or if it was only
        for this request).
        """
        session, self.session = self.session, None
        self.error = storageError(error)
        if session is None:
            return
        log.error(
            "writing to upload session {session} failed: {error}",
            session=session.id,
            error=str(error),
        )
        try:
            session.rollback()
        except OSError as e:
            log.error(
                "could not roll back upload session {session}, removing it: {error}",
                session=session.id,
                error=str(e),
            )
            self._remove(session)
            return
        if self.ephemeral:
            self._remove(session)

    def _release(self) -> None:
        session, self.session = self.session, None
        if session is None:
            return
        try:
            session.closeWriter()
        except OSError as e:
            self.session = session
            self._failed(e)
            return
        if self.ephemeral:
            self._remove(session)
        elif self._uploads is not None:
            self._uploads.touch(session)

    def _remove(self, session: UploadSession) -> None:
        if self._uploads is not None:
            self._uploads.remove(session)


def parseContentRange(value: bytes) -> tuple[int, int] | None:
    """
    The inclusive C{(first, last)} of a C{Content-Range} of an upload chunk, or C{None} if
    it is malformed (including a complete length, after the slash, too small to hold it).
    """
    match = _CONTENT_RANGE.match(value.decode("latin-1").strip())
    if match is None:
        return None
    first, last, total = match.groups()
    if total not in (None, "*") and int(total) <= int(last):
        return None
    return int(first), int(last)


def uploadSinkFor(
    uploads: UploadStore,
    method: bytes,
    uri: bytes,
    headers: Mapping[bytes, Sequence[bytes]],
    length: int | None,
    now: float,
) -> UploadSink | None:
    """
    The sink for the body of this request, if it is a blob upload; C{None} otherwise.

    @param headers: the request headers, lowercased names to their values.
    @param length: the C{Content-Length}, or C{None} for a chunked body.
    """
    if method not in (b"PATCH", b"PUT", b"POST"):
        return None
    try:
        text = uri.decode("ascii")
    except UnicodeDecodeError:
        return None
    parts = urlsplit(text)
    path = "/".join(unquote(segment) for segment in parts.path.split("/"))
    query = parse_qs(parts.query)
    if method == b"POST":
        match = _START_PATH.match(path)
        if match is None or "digest" not in query or "mount" in query:
            return None
        try:
            name = validateName(match.group("name"))
            Digest.parse(query["digest"][0])
        except RegistryError as e:
            return UploadSink(None, e)
        try:
            session = uploads.create(name)
        except StorageError as e:
            return UploadSink(None, storageError(e))
        sink = UploadSink(session, ephemeral=True, uploads=uploads)
        _open(sink)
        return sink
    match = _SESSION_PATH.match(path)
    if match is None:
        return None
    sessionID = match.group("session")
    try:
        name = validateName(match.group("name"))
        if not isSessionID(sessionID):
            raise RegistryError(BLOB_UPLOAD_UNKNOWN, detail={"session": sessionID[:100]})
        session = uploads.get(name, sessionID)
        if method == b"PUT":
            # Refuse a closing PUT that cannot complete before its body joins the upload.
            if "digest" not in query:
                raise RegistryError(
                    DIGEST_INVALID, "the closing PUT needs a digest query parameter"
                )
            Digest.parse(query["digest"][0])
        if session.busy:
            raise outOfOrder(session, {"reason": "another request is writing this session"})
        contentRange = headers.get(b"content-range")
        if contentRange:
            parsed = parseContentRange(contentRange[0])
            if parsed is None:
                raise outOfOrder(session, {"reason": "malformed Content-Range"})
            first, last = parsed
            if first != session.size:
                raise outOfOrder(
                    session,
                    {"reason": "chunk does not start where the upload ends",
                     "expected": session.size, "got": first},
                )
            if last < first:
                raise outOfOrder(session, {"reason": "empty or inverted Content-Range"})
            if length is not None and length != last - first + 1:
                raise RegistryError(
                    SIZE_INVALID,
                    "Content-Length does not match Content-Range",
                    detail={"contentLength": length, "contentRange": [first, last]},
                )
    except RegistryError as e:
        return UploadSink(None, e)
    session.touched = now
    sink = UploadSink(session, uploads=uploads)
    _open(sink)
    return sink


def _open(sink: UploadSink) -> None:
    """
    Open the sink's session for writing; if the disk refuses, the request is answered
    with a 5xx (and a session made for this request alone goes away).
    """
    session = sink.session
    assert session is not None
    try:
        session.openWriter()
    except OSError as e:
        log.error(
            "could not open upload session {session}: {error}",
            session=session.id,
            error=str(e),
        )
        sink.error = storageError(e)
        sink.session = None
        if sink.ephemeral:
            sink._remove(session)
