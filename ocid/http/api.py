"""
The OCI Distribution HTTP API as Klein routes.  Each route validates its inputs (names,
tags, digests) with the spec's grammars, calls the L{Registry}, and answers with the
spec's status codes, headers and error bodies.
"""

from __future__ import annotations

import bisect
import json
import re
from typing import Any
from urllib.parse import quote

import attrs
from klein import Klein
from twisted.internet.defer import CancelledError
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from werkzeug.exceptions import MethodNotAllowed, NotFound

from ocid.digest import ALGORITHMS, Digest
from ocid.errors import (
    BLOB_UPLOAD_INVALID,
    BLOB_UPLOAD_UNKNOWN,
    DIGEST_INVALID,
    MANIFEST_INVALID,
    MANIFEST_UNKNOWN,
    SIZE_INVALID,
    UNKNOWN,
    UNSUPPORTED,
    RegistryError,
    StorageError,
    storageError,
)
from ocid.http.negotiation import acceptedTypes
from ocid.http.producer import FileSegmentsProducer, Segment
from ocid.http.ranges import Unsatisfiable, parseRange
from ocid.http.referrers import referrersPage
from ocid.http.responses import emptyBody, errorBody, jsonBody
from ocid.http.uploadbody import (
    UploadSink,
    rangeHeader,
    uploadLocation,
    uploadSinkFor,
)
from ocid.index import ManifestEntry
from ocid.manifest import IMAGE_TYPES, INDEX_TYPES, OCI_INDEX
from ocid.reference import isTag, parseReference, validateName
from ocid.registry import Registry
from ocid.storage.uploads import UploadSession, isSessionID

log = Logger()

API_VERSION = b"registry/2.0"


def _arg(request: IRequest, name: bytes) -> str | None:
    values = request.args.get(name)
    if not values:
        return None
    return values[0].decode("utf-8", "replace")


def _args(request: IRequest, name: bytes) -> list[str]:
    return [v.decode("utf-8", "replace") for v in request.args.get(name, [])]


def _header(request: IRequest, name: bytes) -> str | None:
    value = request.getHeader(name)
    return None if value is None else value.decode("latin-1")


def _parseCount(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    # ASCII digits only ("²".isdigit() is true), and few enough for int().
    if not (text.isascii() and text.isdigit()) or len(text) > 20:
        raise RegistryError(
            UNSUPPORTED,
            "n must be a non-negative integer",
            detail={"n": text[:100]},
            status=400,
        )
    return int(text)


def _page(
    items: list[str], n: int | None, last: str | None
) -> tuple[list[str], str | None]:
    """
    The page of sorted C{items} after C{last}, at most C{n} long, and the C{last} of the
    next page if there is more ("Listing Tags").
    """
    start = 0 if last is None else bisect.bisect_right(items, last)
    if n is None:
        return items[start:], None
    page = items[start : start + n]
    more = n > 0 and start + n < len(items)
    return page, (page[-1] if more else None)


@attrs.define(slots=False)
class RegistryAPI:
    """
    The HTTP API of one L{Registry}.  L{resource} gives the L{IResource} to serve.
    """

    registry: Registry
    app = Klein()
    app.url_map.merge_slashes = False
    app.url_map.strict_slashes = False

    def resource(self) -> IResource:
        """
        The API as a resource, to serve at the root of a site (the routes begin C{/v2/}).
        """
        return _RegistryRoot(self.app.resource(), self)

    def answerDirectly(self, request: IRequest) -> bytes | None:
        """
        Answer a request for one of the hot read routes (manifest pulls, which every
        C{docker pull} and rollout starts with, and tag lists) without the router: the
        same handler, called synchronously.  C{None} for any other request, which goes
        through Klein.
        """
        for pattern, handler in _DIRECT_ROUTES:
            match = pattern.match(request.path)
            if match is not None:
                try:
                    return handler(self, request, *(g.decode() for g in match.groups()))
                except RegistryError as e:
                    return errorBody(request, e)
        return None

    # Errors.

    @app.handle_errors(RegistryError)
    def _registryError(self, request: IRequest, failure: Failure) -> bytes:
        return errorBody(request, failure.value)

    @app.handle_errors(StorageError)
    def _storageError(self, request: IRequest, failure: Failure) -> bytes:
        log.failure("storage failure answering {uri}", failure, uri=request.uri)
        return errorBody(request, storageError(failure.value))

    @app.handle_errors(NotFound)
    def _notFound(self, request: IRequest, failure: Failure) -> bytes:
        return errorBody(
            request,
            RegistryError(UNSUPPORTED, "no such endpoint", status=404),
        )

    @app.handle_errors(MethodNotAllowed)
    def _methodNotAllowed(self, request: IRequest, failure: Failure) -> bytes:
        allowed = failure.value.valid_methods or []
        request.setHeader(b"Allow", ", ".join(allowed).encode())
        return errorBody(
            request,
            RegistryError(UNSUPPORTED, "method not allowed on this endpoint"),
        )

    @app.handle_errors(Exception)
    def _unexpected(self, request: IRequest, failure: Failure) -> bytes | None:
        if failure.check(CancelledError):
            return None
        log.failure("unexpected error answering {method} {uri}", failure,
                    method=request.method, uri=request.uri)
        return errorBody(
            request, RegistryError(UNKNOWN, "internal error", status=500)
        )

    # "Determining Support"

    @app.route("/v2/", methods=["GET"])
    def base(self, request: IRequest) -> bytes:
        return jsonBody(request, {})

    # "Content Discovery"

    @app.route("/v2/_catalog", methods=["GET"])
    def catalog(self, request: IRequest) -> bytes:
        n = _parseCount(_arg(request, b"n"))
        last = _arg(request, b"last")
        names, nextLast = _page(self.registry.index.sortedNames(), n, last)
        if nextLast is not None:
            request.setHeader(
                b"Link",
                f'</v2/_catalog?n={n}&last={quote(nextLast)}>; rel="next"'.encode(),
            )
        return jsonBody(request, {"repositories": names})

    @app.route("/v2/<path:name>/tags/list", methods=["GET"])
    def tagsList(self, request: IRequest, name: str) -> bytes:
        validateName(name)
        repository = self.registry.repository(name)
        n = _parseCount(_arg(request, b"n"))
        last = _arg(request, b"last")
        tags, nextLast = _page(repository.sortedTags(), n, last)
        if nextLast is not None:
            request.setHeader(
                b"Link",
                f'</v2/{name}/tags/list?n={n}&last={quote(nextLast)}>; '
                f'rel="next"'.encode(),
            )
        return jsonBody(request, {"name": name, "tags": tags})

    @app.route("/v2/<path:name>/referrers/<digest>", methods=["GET"])
    def referrers(self, request: IRequest, name: str, digest: str) -> bytes:
        """
        "Listing Referrers": always an image index (200), empty for a digest nothing
        refers to, in a repository that does not exist too.  Each C{artifactType}
        parameter (an empty one is ignored) filters the list; several keep any of them.
        """
        validateName(name)
        subject = Digest.parse(digest)
        artifactTypes = frozenset(t for t in _args(request, b"artifactType") if t)
        repository = self.registry.index.get(name)
        entries = () if repository is None else repository.referrers.get(subject, {}).values()
        page = referrersPage(entries, artifactTypes or None, _arg(request, b"last"))
        if artifactTypes:
            request.setHeader(b"OCI-Filters-Applied", b"artifactType")
        if page.nextLast is not None:
            query = "last=" + quote(page.nextLast, safe=":")
            for artifactType in sorted(artifactTypes):
                query += "&artifactType=" + quote(artifactType, safe="")
            request.setHeader(
                b"Link", f'</v2/{name}/referrers/{subject}?{query}>; rel="next"'.encode()
            )
        return jsonBody(request, page.index, contentType=OCI_INDEX.encode())

    # "Pulling manifests", "Pushing Manifests", "Deleting tags", "Deleting Manifests"

    @app.route("/v2/<path:name>/manifests/<reference>", methods=["GET", "HEAD"])
    def getManifest(self, request: IRequest, name: str, reference: str) -> bytes:
        validateName(name)
        ref = parseReference(reference)
        entry = self.registry.resolveManifest(name, ref)
        if not isinstance(ref, Digest):
            entry = self._negotiate(request, name, entry)
        etag = f'"{entry.digest}"'.encode()
        request.setHeader(b"Docker-Content-Digest", str(entry.digest).encode())
        request.setHeader(b"ETag", etag)
        if etag in (request.getHeader(b"If-None-Match") or b"").split(b", "):
            return emptyBody(request, 304)
        request.setHeader(b"Content-Type", entry.mediaType.encode())
        request.setHeader(b"Content-Length", b"%d" % entry.size)
        if request.method == b"HEAD":
            return b""
        return self.registry.manifestBytes(entry)

    def _negotiate(
        self, request: IRequest, name: str, entry: ManifestEntry
    ) -> ManifestEntry:
        """
        Apply the client's C{Accept} headers ("Content Negotiation"): serve the stored
        manifest if accepted; for an index the client cannot read, its linux/amd64 image
        manifest if the client accepts that; else C{MANIFEST_UNKNOWN}, as distribution does.
        """
        accepted = acceptedTypes(request.requestHeaders.getRawHeaders(b"accept"))
        if accepted is None or entry.mediaType in accepted:
            return entry
        if entry.mediaType in INDEX_TYPES and accepted & IMAGE_TYPES:
            child = self._defaultPlatform(name, entry, accepted)
            if child is not None:
                return child
        raise RegistryError(
            MANIFEST_UNKNOWN,
            f"manifest of type {entry.mediaType} found, but the Accept header does not "
            f"include it",
            detail={"mediaType": entry.mediaType, "accepted": sorted(accepted)},
        )

    def _defaultPlatform(
        self, name: str, entry: ManifestEntry, accepted: set[str]
    ) -> ManifestEntry | None:
        try:
            index = json.loads(self.registry.manifestBytes(entry))
        except ValueError:
            return None
        repository = self.registry.repository(name)
        for descriptor in index.get("manifests", []):
            platform = descriptor.get("platform") or {}
            if platform.get("os") == "linux" and platform.get("architecture") == "amd64":
                try:
                    child = repository.manifests.get(Digest.parse(descriptor["digest"]))
                except (RegistryError, KeyError, TypeError):
                    continue
                if child is not None and child.mediaType in accepted:
                    return child
        return None

    @app.route("/v2/<path:name>/manifests/<reference>", methods=["PUT"])
    async def putManifest(self, request: IRequest, name: str, reference: str) -> bytes:
        validateName(name)
        ref = parseReference(reference)
        content = request.content
        if getattr(content, "tooLarge", False):
            raise RegistryError(
                MANIFEST_INVALID, "manifest too large", status=413,
                detail={"limit": 4 * 1024 * 1024},
            )
        content.seek(0)
        body = content.read()
        tags = _args(request, b"tag")
        for tag in tags:
            if not isTag(tag):
                raise RegistryError(MANIFEST_INVALID, "invalid tag", detail={"tag": tag[:200]})
        entry = await self.registry.putManifest(
            name, ref, _header(request, b"content-type"), body, tags
        )
        request.setHeader(
            b"Location", f"/v2/{name}/manifests/{entry.digest}".encode()
        )
        request.setHeader(b"Docker-Content-Digest", str(entry.digest).encode())
        if entry.subject is not None:
            request.setHeader(b"OCI-Subject", str(entry.subject).encode())
        if tags:
            # "Pushing Manifests": an OCI-Tag header for each accepted tag, the one in
            # the path too when the manifest was pushed by tag.
            accepted = tags if isinstance(ref, Digest) else [ref, *tags]
            request.responseHeaders.setRawHeaders(
                b"OCI-Tag", [t.encode() for t in dict.fromkeys(accepted)]
            )
        return emptyBody(request, 201)

    @app.route("/v2/<path:name>/manifests/<reference>", methods=["DELETE"])
    async def deleteManifest(
        self, request: IRequest, name: str, reference: str
    ) -> bytes:
        validateName(name)
        await self.registry.deleteManifest(name, parseReference(reference))
        return emptyBody(request, 202)

    # "Pulling blobs", "Checking if content exists in the registry", "Deleting Blobs"

    @app.route("/v2/<path:name>/blobs/<digest>", methods=["GET", "HEAD"])
    async def getBlob(self, request: IRequest, name: str, digest: str) -> bytes | None:
        validateName(name)
        parsed = Digest.parse(digest)
        size = self.registry.blobSize(name, parsed)
        request.setHeader(b"Docker-Content-Digest", str(parsed).encode())
        request.setHeader(b"ETag", f'"{parsed}"'.encode())
        request.setHeader(b"Accept-Ranges", b"bytes")
        request.setHeader(b"Cache-Control", b"max-age=31536000")
        try:
            ranges = parseRange(request.getHeader(b"range"), size)
        except Unsatisfiable:
            raise RegistryError(
                SIZE_INVALID,
                "requested range not satisfiable",
                detail={"size": size},
                status=416,
                headers={b"Content-Range": b"bytes */%d" % size},
            ) from None
        if ranges is None:
            request.setHeader(b"Content-Type", b"application/octet-stream")
            request.setHeader(b"Content-Length", b"%d" % size)
            segments = [Segment(b"", 0, size)]
            trailer = b""
        elif len(ranges) == 1:
            (only,) = ranges
            request.setResponseCode(206)
            request.setHeader(b"Content-Type", b"application/octet-stream")
            request.setHeader(b"Content-Range", only.contentRange(size))
            request.setHeader(b"Content-Length", b"%d" % only.length)
            segments = [Segment(b"", only.first, only.length)]
            trailer = b""
        else:
            boundary = parsed.hex[:32].encode()
            segments = [
                Segment(
                    b"\r\n--%s\r\nContent-Type: application/octet-stream\r\n"
                    b"Content-Range: %s\r\n\r\n" % (boundary, r.contentRange(size)),
                    r.first,
                    r.length,
                )
                for r in ranges
            ]
            trailer = b"\r\n--%s--\r\n" % boundary
            total = sum(len(s.prefix) + s.length for s in segments) + len(trailer)
            request.setResponseCode(206)
            request.setHeader(
                b"Content-Type", b"multipart/byteranges; boundary=" + boundary
            )
            request.setHeader(b"Content-Length", b"%d" % total)
        if request.method == b"HEAD":
            return b""
        blobFile = open(self.registry.blobs.path(parsed), "rb")
        await FileSegmentsProducer(blobFile, segments, request, trailer).start()
        return None

    @app.route("/v2/<path:name>/blobs/<digest>", methods=["DELETE"])
    async def deleteBlob(self, request: IRequest, name: str, digest: str) -> bytes:
        validateName(name)
        await self.registry.deleteBlob(name, Digest.parse(digest))
        return emptyBody(request, 202)

    # "Pushing blobs", "Mounting a blob from another repository"

    @app.route("/v2/<path:name>/blobs/uploads/", methods=["POST"])
    async def startUpload(self, request: IRequest, name: str) -> bytes:
        validateName(name)
        mount = _arg(request, b"mount")
        if mount is not None:
            digest = Digest.parse(mount)
            source = _arg(request, b"from")
            if source is not None:
                validateName(source)
            if await self.registry.mountBlob(name, digest, source):
                return self._created(request, name, digest)
        if _arg(request, b"digest") is not None and mount is None:
            return await self._monolithic(request, name)
        algorithm = _arg(request, b"digest-algorithm") or "sha256"
        if algorithm not in ALGORITHMS:
            raise RegistryError(
                DIGEST_INVALID,
                "unsupported digest algorithm",
                detail={"algorithm": algorithm[:100], "supported": sorted(ALGORITHMS)},
            )
        session = self.registry.startUpload(name, algorithm)
        request.setHeader(b"Location", uploadLocation(session))
        request.setHeader(b"Range", rangeHeader(0))
        request.setHeader(b"Docker-Upload-UUID", session.id.encode())
        return emptyBody(request, 202)

    async def _monolithic(self, request: IRequest, name: str) -> bytes:
        """
        "Single POST": the body is the whole blob.
        """
        sink = self._uploadSink(request)
        session = sink.finish()
        digest = Digest.parse(_arg(request, b"digest") or "")
        try:
            await self.registry.completeUpload(session, digest)
        except BaseException:
            self.registry.uploads.remove(session)
            raise
        return self._created(request, name, digest)

    def _created(self, request: IRequest, name: str, digest: Digest) -> bytes:
        request.setHeader(b"Location", f"/v2/{name}/blobs/{digest}".encode())
        request.setHeader(b"Docker-Content-Digest", str(digest).encode())
        return emptyBody(request, 201)

    def _uploadSink(self, request: IRequest) -> UploadSink:
        """
        The sink that received this request's body; under a site that does not stream
        (when the API is mounted in another program's site), one fed from the buffered
        body now.
        """
        content = request.content
        if isinstance(content, UploadSink):
            return content
        headers = {
            k.lower(): v for k, v in request.requestHeaders.getAllRawHeaders()
        }
        content.seek(0, 2)
        length = content.tell()
        content.seek(0)
        sink = uploadSinkFor(
            self.registry.uploads, request.method, request.uri, headers, length, 0.0
        )
        assert sink is not None, "not an upload request"
        while chunk := content.read(1024 * 1024):
            sink.write(chunk)
        request.content = sink
        return sink

    @app.route("/v2/<path:name>/blobs/uploads/<session>", methods=["PATCH"])
    def patchUpload(self, request: IRequest, name: str, session: str) -> bytes:
        validateName(name)
        upload = self._uploadSink(request).finish()
        request.setHeader(b"Location", uploadLocation(upload))
        request.setHeader(b"Range", rangeHeader(upload.size))
        request.setHeader(b"Docker-Upload-UUID", upload.id.encode())
        return emptyBody(request, 202)

    @app.route("/v2/<path:name>/blobs/uploads/<session>", methods=["PUT"])
    async def putUpload(self, request: IRequest, name: str, session: str) -> bytes:
        validateName(name)
        upload = self._uploadSink(request).finish()
        digestText = _arg(request, b"digest")
        if digestText is None:
            raise RegistryError(
                DIGEST_INVALID, "the closing PUT needs a digest query parameter"
            )
        digest = await self.registry.completeUpload(upload, Digest.parse(digestText))
        return self._created(request, name, digest)

    @app.route("/v2/<path:name>/blobs/uploads/<session>", methods=["GET"])
    def uploadStatus(self, request: IRequest, name: str, session: str) -> bytes:
        validateName(name)
        upload = self._session(name, session)
        request.setHeader(b"Location", uploadLocation(upload))
        request.setHeader(b"Range", rangeHeader(upload.size))
        request.setHeader(b"Docker-Upload-UUID", upload.id.encode())
        return emptyBody(request, 204)

    @app.route("/v2/<path:name>/blobs/uploads/<session>", methods=["DELETE"])
    def cancelUpload(self, request: IRequest, name: str, session: str) -> bytes:
        validateName(name)
        upload = self._session(name, session)
        if upload.busy:
            raise RegistryError(
                BLOB_UPLOAD_INVALID, "the upload is receiving data", status=409
            )
        self.registry.uploads.remove(upload)
        return emptyBody(request, 204)

    def _session(self, name: str, session: str) -> UploadSession:
        if not isSessionID(session):
            raise RegistryError(BLOB_UPLOAD_UNKNOWN, detail={"session": session[:100]})
        return self.registry.uploads.get(name, session)


class _RegistryRoot(Resource):
    """
    The API's resource: adds C{Docker-Distribution-API-Version} to every answer, answers
    the hot read routes directly (L{RegistryAPI.answerDirectly}) and hands everything
    else to Klein.  It serves as a site's root resource, or as its C{v2} child.
    """

    isLeaf = True

    def __init__(self, wrapped: IResource, api: RegistryAPI) -> None:
        super().__init__()
        self._wrapped = wrapped
        self._api = api

    def render(self, request: IRequest) -> Any:
        if request.prepath and request.prepath[-1] == b"v2":
            # Mounted as the "v2" child: the routes want that segment back.
            request.postpath.insert(0, request.prepath.pop())
        request.setHeader(b"Docker-Distribution-API-Version", API_VERSION)
        if request.method in (b"GET", b"HEAD"):
            body = self._api.answerDirectly(request)
            if body is not None:
                return body
        return self._wrapped.render(request)


#: The routes L{RegistryAPI.answerDirectly} answers, for paths with no percent-encoding
#: (anything else goes through Klein, which decodes it).
_DIRECT_ROUTES = [
    (re.compile(rb"^/v2/([^%]+)/manifests/([^/%]+)$"), RegistryAPI.getManifest),
    (re.compile(rb"^/v2/([^%]+)/tags/list$"), RegistryAPI.tagsList),
]


