"""
Crash torture for ocid: push concurrently, C{kill -9} at a random moment, restart on the
same data and check that every acknowledged write survived intact.

Several pusher threads, each with its own keep-alive C{http.client} connection to
127.0.0.1, push small OCI images (1 KiB to 2 MiB random layers, uploaded by POST then PUT,
by chunked PATCH with C{Content-Range}, or by a single POST), OCI image indexes over
images pushed before, tag overwrites, pushes by digest, tag deletes and manifest deletes.
A L{Ledger} records every acknowledged write (a 201/202 response fully received) and the
write each pusher has in flight. After the kill and a restart on the same data directory,
L{Verifier} checks that:

  - every acknowledged manifest that was not deleted (with an acknowledgement) since is
    served byte-identical by digest;
  - every tag points to its last acknowledged digest, or to what the operation in flight
    at the kill would have made of it; acknowledged deletes stay deleted;
  - C{tags/list} agrees with what the tags serve;
  - every child of a served index is served, every blob of a served image downloads
    with the right digest and size;
  - the daemon's log has no C{Traceback} and no C{Unhandled} error.

What the daemon serves after the restart settles whatever was in flight, so the next
cycle starts again from known state; the state carries over all cycles on the same data.

Pushers own disjoint tags and manifests (a pusher only tags, indexes and deletes what it
pushed itself) so that the outcome of each one's sequential operations is well defined;
the repositories are shared, so their tag lists see concurrent writers.

Run it on its own::

    python -m tests.torture --cycles 20 --seconds 8 --pushers 6 --data /tmp/t1

It prints the seed, one line per cycle and the totals, and exits 1 if anything was lost
or corrupted or any other problem (an unexpected response, a traceback in the log) was
seen. C{--reference} runs it against distribution's C{docker-registry} instead, stopping
that with SIGTERM rather than killing it, and without tag deletes (which it lacks).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import attrs

from tests.daemon import RegistryDaemon, freeLoopbackPort, portRefuses

LOOPBACK = "127.0.0.1"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
ACCEPT = (
    f"{MANIFEST_TYPE}, {INDEX_TYPE}, "
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json"
)
MIN_LAYER = 1024
MAX_LAYER = 2 * 1024 * 1024
TAGS_PER_PUSHER = 6
LIVE_MANIFESTS_PER_PUSHER = 30
MAX_OPS_PER_CYCLE = 100_000
REQUEST_TIMEOUT = 60.0
LOG_ALARMS = ("Traceback", "Unhandled")
CLEAN_STOP = "Main loop terminated"
REFERENCE_LOG_ALARMS = ("panic:", "level=fatal", "level=panic")


class TransportError(Exception):
    """
    The connection failed before a whole response arrived.
    """


class UnexpectedResponse(Exception):
    """
    The registry answered a status or headers that the protocol does not allow here.
    """


@attrs.frozen
class Response:
    """
    One complete HTTP response.

    @ivar status: the status code.
    @ivar headers: header names in lower case, to their last value.
    @ivar body: the whole body.
    """

    status: int
    headers: dict[str, str]
    body: bytes

    def brief(self) -> str:
        """
        The status and the start of the body, for messages.
        """
        return f"{self.status} {self.body[:200]!r}"


def sha256Digest(data: bytes) -> str:
    """
    The C{sha256:<hex>} digest of C{data}.
    """
    return "sha256:" + hashlib.sha256(data).hexdigest()


def localTarget(location: str) -> str:
    """
    The path and query of C{location} (absolute or relative), to send over our own
    loopback connection whatever host it names.
    """
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def withQuery(target: str, **params: str) -> str:
    """
    C{target} with C{params} appended to its query string (values used as given).
    """
    query = "&".join(f"{name}={value}" for name, value in params.items())
    return target + ("&" if "?" in target else "?") + query


@attrs.define
class RegistryClient:
    """
    One keep-alive HTTP/1.1 connection to a registry on 127.0.0.1.

    @ivar port: the registry's port.
    @ivar timeout: seconds each socket operation may take.
    """

    port: int
    timeout: float = REQUEST_TIMEOUT
    _connection: http.client.HTTPConnection | None = None

    def request(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """
        Send one request and read the whole response.

        @raise TransportError: if the connection fails first; it is then closed, and
            the next request opens a new one.
        """
        if self._connection is None:
            self._connection = http.client.HTTPConnection(
                LOOPBACK, self.port, timeout=self.timeout
            )
        sendHeaders = dict(headers or {})
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = b""
        try:
            self._connection.request(method, target, body=body, headers=sendHeaders)
            raw = self._connection.getresponse()
            data = raw.read()
            response = Response(
                raw.status, {k.lower(): v for k, v in raw.getheaders()}, data
            )
            if raw.will_close:
                self.close()
            return response
        except (OSError, http.client.HTTPException) as e:
            self.close()
            raise TransportError(f"{method} {target}: {e!r}") from e

    def close(self) -> None:
        """
        Close the connection, if open.
        """
        if self._connection is not None:
            self._connection.close()
            self._connection = None


# The model of what the registry must hold.


@attrs.frozen
class BlobRef:
    """
    A blob that a manifest references.
    """

    digest: str
    size: int


@attrs.define(eq=False)
class ManifestRecord:
    """
    A manifest some pusher sent, and whether the registry may now hold it.

    @ivar allowed: the states the registry may be in: C{True} for "served",
        C{False} for "not served"; both while an operation on it is unsettled.
    @ivar broken: set once a verification found it corrupted, so that it is reported
        once and left alone after.
    """

    repository: str
    digest: str
    body: bytes
    mediaType: str
    blobs: tuple[BlobRef, ...]
    children: tuple[str, ...]
    owner: int
    origin: str
    allowed: set[bool] = attrs.field(factory=lambda: {False})
    broken: bool = False

    @property
    def live(self) -> bool:
        """
        Whether the registry certainly serves it.
        """
        return self.allowed == {True} and not self.broken


@attrs.define(eq=False)
class TagRecord:
    """
    A tag of one pusher, and what it may point to now (C{None}: nothing).

    @ivar history: every digest it was acknowledged to point to, oldest first.
    """

    repository: str
    name: str
    owner: int
    allowed: set[str | None] = attrs.field(factory=lambda: {None})
    history: list[str] = attrs.field(factory=list)
    broken: bool = False

    @property
    def value(self) -> str | None:
        """
        The digest it certainly points to, or C{None} if it certainly points nowhere or
        is unsettled.
        """
        if len(self.allowed) == 1 and not self.broken:
            return next(iter(self.allowed))
        return None


@attrs.frozen
class PutManifest:
    """
    C{PUT /v2/<repository>/manifests/<reference>} of C{record}'s bytes.

    @ivar kind: C{image}, C{index} or C{retag} (an existing manifest under a new tag).
    """

    record: ManifestRecord
    reference: str
    kind: str

    @property
    def byTag(self) -> bool:
        """
        Whether C{reference} is a tag rather than the digest.
        """
        return not self.reference.startswith("sha256:")


@attrs.frozen
class DeleteTag:
    """
    C{DELETE /v2/<repository>/manifests/<tag>}.
    """

    tag: TagRecord
    kind: str = "tag-delete"


@attrs.frozen
class DeleteManifest:
    """
    C{DELETE /v2/<repository>/manifests/<digest>}.
    """

    record: ManifestRecord
    kind: str = "manifest-delete"


@attrs.frozen
class BlobUpload:
    """
    A blob upload; it changes nothing that verification checks, but counts.

    @ivar style: C{post-put}, C{chunked} or C{single-post}.
    """

    repository: str
    digest: str
    style: str
    kind: str = "blob"


Operation = PutManifest | DeleteTag | DeleteManifest | BlobUpload


@attrs.frozen
class Finding:
    """
    Something verification found wrong.

    @ivar category: C{lost}, C{corrupted} or C{problem}.
    """

    category: str
    message: str


@attrs.define
class Ledger:
    """
    Every manifest and tag the pushers wrote, with what the registry may hold for each,
    the operation each pusher has in flight, and the counts of the current cycle.
    """

    manifests: dict[tuple[str, str], ManifestRecord] = attrs.field(factory=dict)
    owned: dict[tuple[int, str], dict[str, ManifestRecord]] = attrs.field(factory=dict)
    tags: dict[tuple[str, str], TagRecord] = attrs.field(factory=dict)
    inflight: dict[int, Operation] = attrs.field(factory=dict)
    acked: Counter[str] = attrs.field(factory=Counter)
    unsettled: Counter[str] = attrs.field(factory=Counter)
    findings: list[Finding] = attrs.field(factory=list)
    _lock: threading.Lock = attrs.field(factory=threading.Lock)

    def begin(self, pusher: int, operation: Operation) -> None:
        """
        C{pusher} is about to send C{operation}.
        """
        with self._lock:
            if isinstance(operation, PutManifest):
                record = operation.record
                key = (record.repository, record.digest)
                if key not in self.manifests:
                    self.manifests[key] = record
                    owned = self.owned.setdefault((record.owner, record.repository), {})
                    owned[record.digest] = record
            self.inflight[pusher] = operation

    def finish(self, pusher: int, acknowledged: bool) -> None:
        """
        C{pusher}'s operation in flight was acknowledged, or will never be (the
        connection broke, or the answer was not the expected one): then the registry
        may or may not have carried it out.
        """
        with self._lock:
            operation = self.inflight.pop(pusher, None)
            if operation is None:
                return
            if acknowledged:
                self.acked[operation.kind] += 1
            else:
                self.unsettled[operation.kind] += 1
            self._apply(operation, acknowledged)

    def abandonAll(self) -> None:
        """
        Count every operation still in flight as unsettled.
        """
        for pusher in list(self.inflight):
            self.finish(pusher, acknowledged=False)

    def _apply(self, operation: Operation, certain: bool) -> None:
        def settle(allowed: set, value: object) -> None:
            if certain:
                allowed.clear()
            allowed.add(value)

        if isinstance(operation, PutManifest):
            record = operation.record
            settle(record.allowed, True)
            if operation.byTag:
                tag = self.tag(record.repository, operation.reference, record.owner)
                settle(tag.allowed, record.digest)
                if certain:
                    tag.history.append(record.digest)
        elif isinstance(operation, DeleteTag):
            settle(operation.tag.allowed, None)
        elif isinstance(operation, DeleteManifest):
            record = operation.record
            settle(record.allowed, False)
            for tag in self.tags.values():
                if tag.repository == record.repository and record.digest in tag.allowed:
                    if certain:
                        tag.allowed.discard(record.digest)
                    tag.allowed.add(None)

    def tag(self, repository: str, name: str, owner: int) -> TagRecord:
        """
        The record of tag C{name} in C{repository}, made if new.
        """
        key = (repository, name)
        if key not in self.tags:
            self.tags[key] = TagRecord(repository, name, owner)
        return self.tags[key]

    def ownManifests(self, owner: int, repository: str) -> list[ManifestRecord]:
        """
        The manifests of C{owner} in C{repository} that the registry certainly serves.
        """
        with self._lock:
            owned = self.owned.get((owner, repository), {})
            for digest in [
                d for d, m in owned.items() if m.broken or True not in m.allowed
            ]:
                del owned[digest]  # deleted for good: verification still checks it
            return [m for m in owned.values() if m.live]

    def referencedChildren(self, owner: int, repository: str) -> set[str]:
        """
        The digests of the children of C{owner}'s indexes in C{repository} that the
        registry may serve.
        """
        with self._lock:
            owned = self.owned.get((owner, repository), {})
            return {c for m in owned.values() if True in m.allowed for c in m.children}

    def ownTags(self, owner: int, repository: str) -> list[TagRecord]:
        """
        The tags of C{owner} in C{repository} that certainly point to a manifest.
        """
        with self._lock:
            return [
                t
                for t in self.tags.values()
                if t.owner == owner and t.repository == repository and t.value is not None
            ]

    def note(self, category: str, message: str) -> None:
        """
        Record a finding of the current cycle.
        """
        with self._lock:
            self.findings.append(Finding(category, message))

    def takeCycle(self) -> tuple[Counter[str], Counter[str], list[Finding]]:
        """
        The acknowledged and unsettled counts and the findings since the last call, and
        start counting afresh.
        """
        with self._lock:
            result = (self.acked, self.unsettled, self.findings)
            self.acked, self.unsettled, self.findings = Counter(), Counter(), []
            return result


# Pushing.


def expect(response: Response, statuses: tuple[int, ...], what: str) -> Response:
    """
    C{response}, if its status is one of C{statuses}.

    @raise UnexpectedResponse: otherwise.
    """
    if response.status not in statuses:
        raise UnexpectedResponse(f"{what} answered {response.brief()}")
    return response


def location(response: Response, what: str) -> str:
    """
    The request target that C{response}'s C{Location} header names.
    """
    value = response.headers.get("location")
    if not value:
        raise UnexpectedResponse(f"{what} answered {response.status} without Location")
    return localTarget(value)


def layerSize(rng: random.Random) -> int:
    """
    A layer size from 1 KiB to 2 MiB, uniform in its logarithm (mostly small ones).
    """
    return int(math.exp(rng.uniform(math.log(MIN_LAYER), math.log(MAX_LAYER))))


@attrs.define
class Pusher:
    """
    One thread's worth of pushes and deletes, with its own connection.

    @ivar number: which pusher; it owns the tags C{p<number>-t<k>} and whatever
        manifests it pushed, in every cycle.
    @ivar stopping: set just before the daemon is killed; connection errors after it
        are expected.
    """

    number: int
    client: RegistryClient
    ledger: Ledger
    rng: random.Random
    repositories: tuple[str, ...]
    stopping: threading.Event
    deadline: float
    cycle: int
    tagDeletes: bool = True
    made: int = 0

    def run(self) -> None:
        """
        Push until told to stop, until the deadline or until something goes wrong.
        """
        try:
            for _ in range(MAX_OPS_PER_CYCLE):
                if self.stopping.is_set() or time.monotonic() > self.deadline:
                    break
                self.step()
        except TransportError as e:
            if not self.stopping.is_set():
                self.ledger.note("problem", f"pusher {self.number}: {e}")
        except UnexpectedResponse as e:
            self.ledger.note("problem", f"pusher {self.number}: {e}")
        except Exception as e:  # a bug in this tool must not pass silently
            self.ledger.note("problem", f"pusher {self.number} crashed: {e!r}")
            raise
        finally:
            self.ledger.finish(self.number, acknowledged=False)
            self.client.close()

    def step(self) -> None:
        """
        Do one randomly chosen operation in a randomly chosen repository.
        """
        repository = self.rng.choice(self.repositories)
        mine = self.ledger.ownManifests(self.number, repository)
        images = [m for m in mine if m.mediaType == MANIFEST_TYPE]
        tags = self.ledger.ownTags(self.number, repository)
        crowded = len(mine) > LIVE_MANIFESTS_PER_PUSHER // len(self.repositories)
        choices: list[tuple[int, Callable[[], None]]] = [
            (45, lambda: self.pushImage(repository)),
            (15 if images else 0, lambda: self.pushIndex(repository, images)),
            (10 if mine else 0, lambda: self.retag(repository, mine)),
            (10 if tags and self.tagDeletes else 0, lambda: self.deleteTag(tags)),
            (60 if crowded else 15, lambda: self.deleteManifest(mine)),
        ]
        actions = [action for weight, action in choices if weight]
        weights = [weight for weight, action in choices if weight]
        self.rng.choices(actions, weights)[0]()

    def nonce(self) -> str:
        """
        A string no other manifest of this run carries.
        """
        self.made += 1
        return f"p{self.number}-c{self.cycle}-{self.made}-{self.rng.getrandbits(32):08x}"

    def tagName(self) -> str:
        """
        One of this pusher's tags, at random.
        """
        return f"p{self.number}-t{self.rng.randrange(TAGS_PER_PUSHER)}"

    def reference(self, digest: str) -> str:
        """
        Where to put a new manifest: mostly a tag, sometimes its digest.
        """
        return self.tagName() if self.rng.random() < 0.7 else digest

    def serialize(self, document: dict) -> bytes:
        """
        C{document} as JSON, compact or indented, to catch a registry that re-encodes.
        """
        if self.rng.random() < 0.5:
            return json.dumps(document, separators=(",", ":")).encode()
        return json.dumps(document, indent=self.rng.choice([2, 3])).encode() + b"\n"

    def pushImage(self, repository: str) -> None:
        """
        Upload a config and one to three layers, then the manifest over them.
        """
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Labels": {"torture": self.nonce()}},
                "rootfs": {"type": "layers", "diff_ids": []},
            }
        ).encode()
        blobs = [BlobRef(self.uploadBlob(repository, config), len(config))]
        for _ in range(self.rng.randint(1, 3)):
            layer = self.rng.randbytes(layerSize(self.rng))
            blobs.append(BlobRef(self.uploadBlob(repository, layer), len(layer)))
        document = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {
                "mediaType": CONFIG_TYPE,
                "digest": blobs[0].digest,
                "size": blobs[0].size,
            },
            "layers": [
                {"mediaType": LAYER_TYPE, "digest": b.digest, "size": b.size}
                for b in blobs[1:]
            ],
            "annotations": {"org.example.torture": self.nonce()},
        }
        body = self.serialize(document)
        record = ManifestRecord(
            repository,
            sha256Digest(body),
            body,
            MANIFEST_TYPE,
            tuple(blobs),
            (),
            self.number,
            "",
        )
        self.putManifest(PutManifest(record, self.reference(record.digest), "image"))

    def pushIndex(self, repository: str, images: list[ManifestRecord]) -> None:
        """
        Push an index over one to three of this pusher's images in C{repository}.
        """
        children = self.rng.sample(images, min(len(images), self.rng.randint(1, 3)))
        document = {
            "schemaVersion": 2,
            "mediaType": INDEX_TYPE,
            "manifests": [
                {
                    "mediaType": child.mediaType,
                    "digest": child.digest,
                    "size": len(child.body),
                    "platform": {"architecture": f"arch{i}", "os": "linux"},
                }
                for i, child in enumerate(children)
            ],
            "annotations": {"org.example.torture": self.nonce()},
        }
        body = self.serialize(document)
        record = ManifestRecord(
            repository,
            sha256Digest(body),
            body,
            INDEX_TYPE,
            (),
            tuple(child.digest for child in children),
            self.number,
            "",
        )
        self.putManifest(PutManifest(record, self.reference(record.digest), "index"))

    def retag(self, repository: str, mine: list[ManifestRecord]) -> None:
        """
        Put one of this pusher's manifests under one of its tags.
        """
        self.putManifest(PutManifest(self.rng.choice(mine), self.tagName(), "retag"))

    def putManifest(self, operation: PutManifest) -> None:
        """
        Send C{operation} and record its acknowledgement.
        """
        record = operation.record
        target = f"/v2/{record.repository}/manifests/{operation.reference}"
        if not record.origin:
            record.origin = f"cycle {self.cycle} PUT {target}"
        self.ledger.begin(self.number, operation)
        response = self.client.request(
            "PUT", target, record.body, {"Content-Type": record.mediaType}
        )
        expect(response, (201,), f"PUT {target} ({operation.kind})")
        served = response.headers.get("docker-content-digest")
        if served is not None and served != record.digest:
            raise UnexpectedResponse(
                f"PUT {target} answered Docker-Content-Digest {served}, "
                f"expected {record.digest}"
            )
        self.ledger.finish(self.number, acknowledged=True)

    def deleteTag(self, tags: list[TagRecord]) -> None:
        """
        Delete one of this pusher's tags.
        """
        tag = self.rng.choice(tags)
        target = f"/v2/{tag.repository}/manifests/{tag.name}"
        self.ledger.begin(self.number, DeleteTag(tag))
        expect(self.client.request("DELETE", target), (202,), f"DELETE {target}")
        self.ledger.finish(self.number, acknowledged=True)

    def deleteManifest(self, mine: list[ManifestRecord]) -> None:
        """
        Delete one of this pusher's manifests by digest: an index, or an image that no
        index still being served references.
        """
        if not mine:
            return
        referenced = self.ledger.referencedChildren(self.number, mine[0].repository)
        candidates = [m for m in mine if m.digest not in referenced]
        if not candidates:
            return
        record = self.rng.choice(candidates)
        target = f"/v2/{record.repository}/manifests/{record.digest}"
        self.ledger.begin(self.number, DeleteManifest(record))
        expect(self.client.request("DELETE", target), (202,), f"DELETE {target}")
        self.ledger.finish(self.number, acknowledged=True)

    def uploadBlob(self, repository: str, data: bytes) -> str:
        """
        Upload C{data} one of three ways and return its digest.
        """
        digest = sha256Digest(data)
        style = self.rng.choices(["post-put", "chunked", "single-post"], [2, 1, 1])[0]
        self.ledger.begin(self.number, BlobUpload(repository, digest, style))
        start = f"/v2/{repository}/blobs/uploads/"
        octets = {"Content-Type": "application/octet-stream"}
        if style == "single-post":
            target = withQuery(start, digest=digest)
            response = expect(
                self.client.request("POST", target, data, octets),
                (201, 202),
                f"POST {target}",
            )
            if response.status == 201:
                self.ledger.finish(self.number, acknowledged=True)
                return digest
            # The registry does not do single-POST uploads: PUT the body, as the spec says.
            upload = location(response, f"POST {target}")
            self.closeUpload(upload, digest, data)
            return digest
        response = expect(self.client.request("POST", start), (202,), f"POST {start}")
        upload = location(response, f"POST {start}")
        if style == "post-put":
            self.closeUpload(upload, digest, data)
            return digest
        pieces = self.rng.randint(1, 4)
        cuts = sorted(self.rng.sample(range(1, len(data)), pieces - 1))
        bounds = list(zip([0, *cuts], [*cuts, len(data)], strict=True))
        lastInPut = self.rng.random() < 0.5
        for begin, end in bounds[:-1] if lastInPut else bounds:
            upload = self.patchChunk(upload, data, begin, end)
        if lastInPut:
            begin, end = bounds[-1]
            self.closeUpload(upload, digest, data[begin:end], begin)
        else:
            self.closeUpload(upload, digest, b"")
        return digest

    def patchChunk(self, upload: str, data: bytes, begin: int, end: int) -> str:
        """
        PATCH C{data[begin:end]} into the upload at C{upload}; return its next location.
        """
        response = expect(
            self.client.request(
                "PATCH",
                upload,
                data[begin:end],
                {
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{begin}-{end - 1}",
                },
            ),
            (202,),
            f"PATCH {upload} [{begin}-{end - 1}]",
        )
        got = response.headers.get("range")
        if got is not None and got != f"0-{end - 1}":
            raise UnexpectedResponse(
                f"PATCH {upload} answered Range {got}, not 0-{end - 1}"
            )
        return location(response, f"PATCH {upload}")

    def closeUpload(
        self, upload: str, digest: str, chunk: bytes, offset: int | None = None
    ) -> None:
        """
        Close the upload at C{upload} with C{?digest=}, sending C{chunk} as the body.
        """
        target = withQuery(upload, digest=digest)
        headers = {"Content-Type": "application/octet-stream"}
        if offset is not None and chunk:
            headers["Content-Range"] = f"{offset}-{offset + len(chunk) - 1}"
        response = expect(
            self.client.request("PUT", target, chunk, headers), (201,), f"PUT {target}"
        )
        served = response.headers.get("docker-content-digest")
        if served is not None and served != digest:
            raise UnexpectedResponse(
                f"PUT {target} answered Docker-Content-Digest {served}, not {digest}"
            )
        self.ledger.finish(self.number, acknowledged=True)


# Verifying.


@attrs.define
class Verifier:
    """
    Checks the registry against the ledger, then settles the ledger on what the
    registry serves.

    @ivar verifiedBlobs: the blobs downloaded whole and found right before; each
        verification downloads the others whole, these up to C{sampleBytes} at random,
        and only asks for the size of the rest.
    """

    client: RegistryClient
    ledger: Ledger
    rng: random.Random
    sampleBytes: int = 32 * 1024 * 1024
    verifiedBlobs: set[tuple[str, str]] = attrs.field(factory=set)
    checked: Counter[str] = attrs.field(factory=Counter)
    brokenConnections: int = 0
    reportedListings: set[str] = attrs.field(factory=set)

    def lost(self, message: str) -> None:
        """
        Record an acknowledged write the registry no longer shows.
        """
        self.ledger.note("lost", message)

    def corrupted(self, message: str) -> None:
        """
        Record something the registry serves wrong.
        """
        self.ledger.note("corrupted", message)

    def problem(self, message: str) -> None:
        """
        Record a failure that is neither a loss nor a corruption.
        """
        self.ledger.note("problem", message)

    def verify(self, repositories: tuple[str, ...], everything: bool = False) -> None:
        """
        Check every manifest, tag, tag list and referenced blob; with C{everything},
        download every blob whole.
        """
        self.checked = Counter()
        self.brokenConnections = 0
        self.client.close()  # its connection went to the process that was killed
        present = self.verifyManifests()
        observedTags = self.verifyTags()
        for repository in repositories:
            self.verifyTagList(repository, observedTags)
        self.verifyReferences(present, everything)

    def fetch(
        self, method: str, target: str, headers: dict[str, str] | None = None
    ) -> Response | None:
        """
        One request; if the connection breaks, note a problem and return C{None} (the
        next request reconnects), unless it broke too often: then give up.

        @raise TransportError: on the eleventh broken connection of a verification.
        """
        try:
            return self.client.request(method, target, None, headers)
        except TransportError as e:
            self.brokenConnections += 1
            if self.brokenConnections > 10:
                raise
            self.problem(f"connection broke: {e}")
            return None

    def getManifest(self, repository: str, reference: str) -> Response | None:
        """
        C{GET /v2/<repository>/manifests/<reference>}, accepting OCI and Docker types.
        """
        target = f"/v2/{repository}/manifests/{reference}"
        return self.fetch("GET", target, {"Accept": ACCEPT})

    def verifyManifests(self) -> list[ManifestRecord]:
        """
        Check each manifest by digest; return the ones served (and right).
        """
        present = []
        for record in list(self.ledger.manifests.values()):
            if record.broken:
                continue
            self.checked["manifests"] += 1
            target = f"/v2/{record.repository}/manifests/{record.digest}"
            response = self.getManifest(record.repository, record.digest)
            if response is None:
                continue
            if response.status == 404:
                if False not in record.allowed:
                    self.lost(
                        f"manifest {record.digest} in {record.repository} "
                        f"({record.origin}, acknowledged): GET {target} answered 404"
                    )
                record.allowed = {False}
                continue
            if response.status != 200:
                self.problem(f"GET {target} answered {response.brief()}")
                record.broken = True
                continue
            wrong = self.manifestFault(record, response)
            if wrong:
                self.corrupted(f"GET {target} ({record.origin}): {wrong}")
                record.broken = True
                continue
            if True not in record.allowed:
                self.lost(
                    f"acknowledged DELETE of manifest {record.digest} in "
                    f"{record.repository} ({record.origin}) undone: GET {target} "
                    "answered 200"
                )
            record.allowed = {True}
            present.append(record)
        return present

    @staticmethod
    def manifestFault(record: ManifestRecord, response: Response) -> str | None:
        """
        What is wrong with C{response} as the body of C{record}, if anything.
        """
        if sha256Digest(response.body) != record.digest:
            return (
                f"body of {len(response.body)} bytes has digest "
                f"{sha256Digest(response.body)}"
            )
        if response.body != record.body:
            return "body differs from what was pushed"
        header = response.headers.get("docker-content-digest")
        if header is not None and header != record.digest:
            return f"Docker-Content-Digest {header}"
        contentType = response.headers.get("content-type", "").split(";")[0].strip()
        if contentType != record.mediaType:
            return f"Content-Type {contentType!r}, pushed as {record.mediaType}"
        return None

    def verifyTags(self) -> dict[tuple[str, str], str | None]:
        """
        Check what each tag serves; return the digest each serves (C{None}: 404).
        """
        observed: dict[tuple[str, str], str | None] = {}
        for key, tag in list(self.ledger.tags.items()):
            if tag.broken:
                continue
            self.checked["tags"] += 1
            target = f"/v2/{tag.repository}/manifests/{tag.name}"
            response = self.getManifest(tag.repository, tag.name)
            if response is None:
                continue
            if response.status == 404:
                value = None
            elif response.status == 200:
                value = sha256Digest(response.body)
                record = self.ledger.manifests.get((tag.repository, value))
                header = response.headers.get("docker-content-digest")
                if record is None or (header is not None and header != value):
                    self.corrupted(
                        f"GET {target} served a manifest of digest {value} "
                        f"(Docker-Content-Digest {header}) that was never pushed there; "
                        f"expected one of {sorted(map(str, tag.allowed))}"
                    )
                    tag.broken = True
                    continue
            else:
                self.problem(f"GET {target} answered {response.brief()}")
                tag.broken = True
                continue
            observed[key] = value
            if value not in tag.allowed:
                expected = " or ".join(sorted(map(str, tag.allowed)))
                if value is None:
                    self.lost(f"tag: GET {target} answered 404, expected {expected}")
                elif value in tag.history or None in tag.allowed:
                    self.lost(
                        f"tag: GET {target} served {value}, an older value or deleted "
                        f"(acknowledged since: {expected})"
                    )
                else:
                    self.corrupted(f"tag: GET {target} served {value}, expected {expected}")
            tag.allowed = {value}
            if value is not None and tag.history[-1:] != [value]:
                tag.history.append(value)
        return observed

    def verifyTagList(
        self, repository: str, observed: dict[tuple[str, str], str | None]
    ) -> None:
        """
        Check that C{tags/list} of C{repository} names exactly the tags that serve a
        manifest.
        """
        listed: set[str] = set()
        target: str | None = f"/v2/{repository}/tags/list"
        for _ in range(1000):
            if target is None:
                break
            response = self.fetch("GET", target)
            if response is None:
                return
            if response.status == 404:
                break
            if response.status != 200:
                self.problem(f"GET {target} answered {response.brief()}")
                return
            listed.update(json.loads(response.body).get("tags") or [])
            link = re.match(r'<([^>]*)>;\s*rel="?next"?', response.headers.get("link", ""))
            target = localTarget(link.group(1)) if link else None
        serving = {
            name
            for (repo, name), value in observed.items()
            if repo == repository and value is not None
        }
        known = {name for (repo, name) in self.ledger.tags if repo == repository}
        findings = []
        for name in sorted(listed - serving):
            if name in known and (repository, name) not in observed:
                continue  # a tag already reported broken
            findings.append(
                (
                    "corrupted",
                    f"GET /v2/{repository}/tags/list names {name!r}, but "
                    f"GET /v2/{repository}/manifests/{name} answered 404"
                    if name in known
                    else f"GET /v2/{repository}/tags/list names {name!r}, never pushed",
                )
            )
        for name in sorted(serving - listed):
            findings.append(
                (
                    "lost",
                    f"GET /v2/{repository}/tags/list lacks {name!r}, which serves "
                    f"{observed[(repository, name)]}",
                )
            )
        for category, message in findings:
            if message not in self.reportedListings:  # once, not in every cycle after
                self.reportedListings.add(message)
                self.ledger.note(category, message)

    def verifyReferences(self, present: list[ManifestRecord], everything: bool) -> None:
        """
        Check that every child of a served index is served and every blob of a served
        image downloads right.
        """
        served = {(m.repository, m.digest) for m in present}
        blobs: dict[tuple[str, str], BlobRef] = {}
        for record in present:
            for child in record.children:
                if (record.repository, child) not in served:
                    self.lost(
                        f"index {record.digest} in {record.repository} is served but its "
                        f"child GET /v2/{record.repository}/manifests/{child} is not"
                    )
            for blob in record.blobs:
                blobs[(record.repository, blob.digest)] = blob
        old = [key for key in blobs if key in self.verifiedBlobs]
        self.rng.shuffle(old)
        budget = self.sampleBytes
        sample = set()
        for key in old:
            if budget < blobs[key].size:
                break
            budget -= blobs[key].size
            sample.add(key)
        for key, blob in sorted(blobs.items()):
            whole = everything or key not in self.verifiedBlobs or key in sample
            if self.verifyBlob(key[0], blob, whole) and whole:
                self.verifiedBlobs.add(key)

    def verifyBlob(self, repository: str, blob: BlobRef, whole: bool) -> bool:
        """
        Check one blob: download it whole, or only its size with HEAD. Return whether
        it was right.
        """
        method = "GET" if whole else "HEAD"
        target = f"/v2/{repository}/blobs/{blob.digest}"
        response = self.fetch(method, target)
        for _ in range(3):
            if response is None or response.status not in (301, 302, 303, 307, 308):
                break
            target = location(response, f"{method} {target}")
            response = self.fetch(method, target)
        self.checked["blobs"] += 1
        if response is None:
            return False
        if response.status == 404:
            self.lost(f"{method} {target} answered 404 (referenced by a served manifest)")
            return False
        if response.status != 200:
            self.problem(f"{method} {target} answered {response.brief()}")
            return False
        length = response.headers.get("content-length")
        if whole:
            self.checked["blob bytes"] += len(response.body)
            if (
                len(response.body) != blob.size
                or sha256Digest(response.body) != blob.digest
            ):
                self.corrupted(
                    f"GET {target}: {len(response.body)} bytes of digest "
                    f"{sha256Digest(response.body)}, expected {blob.size} bytes"
                )
                return False
        elif length is None or int(length) != blob.size:
            self.corrupted(f"HEAD {target}: Content-Length {length}, expected {blob.size}")
            return False
        return True


# Daemons.


class Daemon(Protocol):
    """
    What the torture needs of a registry process: L{RegistryDaemon}'s interface.
    """

    port: int

    def start(self, timeout: float = 30.0) -> None: ...

    def stop(self, timeout: float = 30.0) -> int: ...

    def kill(self) -> None: ...

    def log(self) -> str: ...


@attrs.define
class ReferenceDaemon:
    """
    distribution's C{docker-registry serve} on a loopback port with filesystem storage
    in C{dataPath} and deletes enabled, behind the same interface as
    L{RegistryDaemon}, to check this tool itself.
    """

    dataPath: Path
    logPath: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        """
        Start it and wait until C{GET /v2/} answers 200.
        """
        if not self.port:
            self.port = freeLoopbackPort()
        self.dataPath.mkdir(parents=True, exist_ok=True)
        config = self.logPath.with_suffix(".yml")
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n"
            "storage:\n"
            f"  filesystem:\n    rootdirectory: {self.dataPath}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: {LOOPBACK}:{self.port}\n"
        )
        with self.logPath.open("ab") as logFile:
            self.process = subprocess.Popen(
                [
                    shutil.which("docker-registry") or "/usr/bin/docker-registry",
                    "serve",
                    str(config),
                ],
                stdout=logFile,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited:\n{self.log()}")
            try:
                url = f"http://{LOOPBACK}:{self.port}/v2/"
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"docker-registry did not answer:\n{self.log()}")

    def stop(self, timeout: float = 30.0) -> int:
        """
        Stop it with SIGTERM and wait; return its exit code.
        """
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        self.process = None
        return code

    def kill(self) -> None:
        """
        Kill it with SIGKILL and reap it.
        """
        if self.process is not None:
            self.process.kill()
            self.process.wait(30)
            self.process = None

    def log(self) -> str:
        """
        Everything it logged so far.
        """
        try:
            return self.logPath.read_text(errors="replace")
        except FileNotFoundError:
            return ""


# The whole run.


@attrs.frozen
class TortureConfig:
    """
    The parameters of one run.

    @ivar seconds: the mean time from the start of pushing to the kill; each kill comes
        at a random moment between half and one and a half times this.
    @ivar reference: run against distribution's registry, stopped with SIGTERM.
    @ivar tagDeletes: whether to delete tags (the reference cannot).
    """

    data: Path
    log: Path
    cycles: int = 3
    seconds: float = 4.0
    pushers: int = 4
    repositories: int = 4
    seed: int = 0
    reference: bool = False
    tagDeletes: bool = True


@attrs.define
class CycleReport:
    """
    What one cycle did and found.
    """

    name: str
    pushSeconds: float
    acked: Counter[str]
    unsettled: Counter[str]
    checked: Counter[str]
    findings: list[Finding]

    def count(self, category: str) -> int:
        """
        How many findings of C{category} it had.
        """
        return sum(1 for f in self.findings if f.category == category)

    @property
    def images(self) -> int:
        """
        How many image manifests and indexes were pushed with an acknowledgement.
        """
        return self.acked["image"] + self.acked["index"]

    def line(self) -> str:
        """
        One line of figures.
        """

        def counts(c: Counter[str]) -> str:
            return ", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "none"

        return (
            f"{self.name}: pushed {self.pushSeconds:.2f} s; "
            f"acked {sum(self.acked.values())} ({counts(self.acked)}); "
            f"in flight {sum(self.unsettled.values())} ({counts(self.unsettled)}); "
            f"checked {counts(self.checked)}; "
            f"lost {self.count('lost')}, corrupted {self.count('corrupted')}, "
            f"problems {self.count('problem')}"
        )


@attrs.define
class Torture:
    """
    Runs the cycles of one torture run and keeps their reports.
    """

    config: TortureConfig
    out: Callable[[str], None] = print
    ledger: Ledger = attrs.field(factory=Ledger)
    reports: list[CycleReport] = attrs.field(factory=list)
    daemon: Daemon = attrs.field(init=False)
    rng: random.Random = attrs.field(init=False)
    verifier: Verifier = attrs.field(init=False)
    repositories: tuple[str, ...] = attrs.field(init=False)
    logOffset: int = 0

    def __attrs_post_init__(self) -> None:
        config = self.config
        if config.reference:
            self.daemon = ReferenceDaemon(config.data, config.log)
        else:
            self.daemon = RegistryDaemon(config.data, config.log)
        self.rng = random.Random(config.seed)
        self.repositories = tuple(f"torture/r{i}" for i in range(config.repositories))

    def run(self) -> list[CycleReport]:
        """
        Start the daemon, run every cycle, then stop it cleanly, restart it once more
        and verify everything, blobs downloaded whole.
        """
        c = self.config
        self.out(
            f"torture seed {c.seed}: {c.cycles} cycles of ~{c.seconds} s, {c.pushers} "
            f"pushers, {len(self.repositories)} repositories, data {c.data}, log {c.log}"
            + (" (reference registry, SIGTERM instead of SIGKILL)" if c.reference else "")
        )
        if not self.startDaemon("start"):
            return self.reports
        self.verifier = Verifier(
            RegistryClient(self.daemon.port), self.ledger, random.Random(f"{c.seed}-v")
        )
        try:
            for cycle in range(1, c.cycles + 1):
                if not self.cycle(cycle):
                    break
            else:
                self.finalCycle()
        finally:
            self.verifier.client.close()
            self.daemon.kill()
        self.summary()
        return self.reports

    def startDaemon(self, name: str) -> bool:
        """
        Start the daemon; on failure report it as a problem of cycle C{name}.
        """
        try:
            self.daemon.start()
        except RuntimeError as e:
            self.ledger.note("problem", f"the daemon did not start: {e}")
            self.finishReport(name, 0.0, Counter())
            return False
        return True

    def cycle(self, number: int) -> bool:
        """
        Push for a random time, kill the daemon, restart it and verify. Return
        whether the daemon came back.
        """
        c = self.config
        killAfter = self.rng.uniform(0.5 * c.seconds, 1.5 * c.seconds)
        stopping = threading.Event()
        started = time.monotonic()
        pushers = [
            Pusher(
                number=i,
                client=RegistryClient(self.daemon.port),
                ledger=self.ledger,
                rng=random.Random(f"{c.seed}-{number}-{i}"),
                repositories=self.repositories,
                stopping=stopping,
                deadline=started + killAfter + 30,
                cycle=number,
                tagDeletes=c.tagDeletes,
            )
            for i in range(c.pushers)
        ]
        threads = [
            threading.Thread(target=p.run, name=f"pusher-{p.number}", daemon=True)
            for p in pushers
        ]
        for thread in threads:
            thread.start()
        stopping.wait(killAfter)
        stopping.set()
        if c.reference:
            self.daemon.stop()
        else:
            self.daemon.kill()
        pushSeconds = time.monotonic() - started
        for thread in threads:
            thread.join(REQUEST_TIMEOUT + 10)
            if thread.is_alive():
                self.ledger.note("problem", f"{thread.name} did not end after the kill")
        self.ledger.abandonAll()
        if not portRefuses(self.daemon.port):
            self.ledger.note("problem", "the port still accepts after the kill")
        name = f"cycle {number}/{c.cycles}"
        if not self.startDaemon(name):
            return False
        self.verifyAndReport(name, pushSeconds, everything=False)
        return True

    def finalCycle(self) -> None:
        """
        Stop the daemon cleanly, check its exit code, restart it and verify everything
        with every blob downloaded whole; then stop it cleanly again.
        """
        self.stopCleanly()
        if not self.startDaemon("final"):
            return
        self.verifyAndReport("final (clean restart)", 0.0, everything=True)
        self.stopCleanly()
        self.checkLog()
        if self.ledger.findings:
            self.finishReport("final stop", 0.0, Counter())

    def stopCleanly(self) -> None:
        """
        Stop the daemon with SIGTERM; note a problem unless it exits with 0 or of the
        signal (twistd re-raises it after a clean shutdown, and the reference registry
        does not catch it), or if ocid does not log the end of its main loop.
        """
        before = len(self.daemon.log())
        code = self.daemon.stop()
        if code not in (0, -signal.SIGTERM):
            self.ledger.note("problem", f"clean stop (SIGTERM) exited with {code}")
        if not self.config.reference and CLEAN_STOP not in self.daemon.log()[before:]:
            self.ledger.note("problem", f"clean stop (SIGTERM): no {CLEAN_STOP!r} logged")

    def verifyAndReport(self, name: str, pushSeconds: float, everything: bool) -> None:
        """
        Verify, check the log since the last report, and report the cycle.
        """
        try:
            self.verifier.verify(self.repositories, everything)
        except TransportError as e:
            self.ledger.note("problem", f"verification failed: {e}")
        self.checkLog()
        self.finishReport(name, pushSeconds, self.verifier.checked)

    def checkLog(self) -> None:
        """
        Note the alarming entries the daemon logged since the last check: one problem
        for each distinct error, with its first excerpt and how often it came.
        """
        text = self.daemon.log()
        fresh, self.logOffset = text[self.logOffset :], len(text)
        alarms = REFERENCE_LOG_ALARMS if self.config.reference else LOG_ALARMS
        lines = fresh.splitlines()
        seen: dict[str, list[str]] = {}
        counts: Counter[str] = Counter()
        i = 0
        while i < len(lines):
            if not any(alarm in lines[i] for alarm in alarms):
                i += 1
                continue
            # The entry: its first line and the indented lines of its traceback.
            end = i + 1
            while end < len(lines) and lines[end][:1] in ("\t", " "):
                end += 1
            start = i - 1 if i > 0 and lines[i][:1] in ("\t", " ") else i
            entry = lines[start:end]
            meaningful = [line.strip() for line in entry if line.strip()]
            key = meaningful[-1] if meaningful else lines[i]
            counts[key] += 1
            seen.setdefault(key, entry[:40])
            i = end
        for key, entry in seen.items():
            excerpt = "\n      ".join(entry)
            self.ledger.note(
                "problem", f"daemon log, {counts[key]} time(s):\n      {excerpt}"
            )

    def finishReport(self, name: str, pushSeconds: float, checked: Counter[str]) -> None:
        """
        Print the report of the cycle just ended, with its findings.
        """
        acked, unsettled, findings = self.ledger.takeCycle()
        report = CycleReport(
            name, pushSeconds, acked, unsettled, Counter(checked), findings
        )
        self.reports.append(report)
        self.out(report.line())
        for finding in findings[:20]:
            self.out(f"  {finding.category}: {finding.message}")
        if len(findings) > 20:
            self.out(f"  ... and {len(findings) - 20} more findings")

    def summary(self) -> None:
        """
        Print the totals.
        """
        totals = self.totals()
        self.out(
            f"total: {len([r for r in self.reports if r.name.startswith('cycle')])} "
            f"kill cycles, acked {totals['acked']} writes ({totals['images']} "
            f"images and indexes), {totals['in flight']} in flight at the kills, "
            f"lost {totals['lost']}, corrupted "
            f"{totals['corrupted']}, problems {totals['problem']} (seed {self.config.seed})"
        )

    def totals(self) -> Counter[str]:
        """
        The acknowledged writes, images and findings by category, over all cycles.
        """
        totals: Counter[str] = Counter()
        for report in self.reports:
            totals["acked"] += sum(report.acked.values())
            totals["images"] += report.images
            totals["in flight"] += sum(report.unsettled.values())
            for category in ("lost", "corrupted", "problem"):
                totals[category] += report.count(category)
        return totals


def main(argv: list[str] | None = None) -> int:
    """
    Parse the command line, run the torture, return the exit code: 1 if anything was
    lost or corrupted or any problem was seen, else 0.
    """
    parser = argparse.ArgumentParser(
        prog="python -m tests.torture", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--cycles", type=int, default=3, help="kill cycles")
    parser.add_argument(
        "--seconds", type=float, default=4.0, help="mean seconds of pushing per cycle"
    )
    parser.add_argument("--pushers", type=int, default=4, help="concurrent pushers")
    parser.add_argument("--repositories", type=int, default=4, help="repositories")
    parser.add_argument(
        "--data",
        type=Path,
        help="the registry's data directory (new or empty); default: a temporary one",
    )
    parser.add_argument(
        "--log", type=Path, help="the daemon's log (default: beside --data)"
    )
    parser.add_argument("--seed", type=int, help="random seed (default: a random one)")
    parser.add_argument(
        "--reference",
        action="store_true",
        help="torture distribution's docker-registry (SIGTERM, no tag deletes) instead",
    )
    parser.add_argument("--no-tag-deletes", action="store_true", help="never delete tags")
    args = parser.parse_args(argv)
    if args.cycles < 1 or args.pushers < 1 or args.repositories < 1 or args.seconds <= 0:
        parser.error("--cycles, --pushers, --repositories and --seconds must be positive")
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    scratch = None
    if args.data is None:
        scratch = Path(tempfile.mkdtemp(prefix="ocid-torture-"))
        args.data = scratch / "data"
    if args.data.exists() and any(args.data.iterdir()):
        parser.error(f"--data {args.data} is not empty: the run must start from nothing")
    log = args.log or args.data.parent / f"{args.data.name}.log"
    config = TortureConfig(
        data=args.data.absolute(),
        log=log.absolute(),
        cycles=args.cycles,
        seconds=args.seconds,
        pushers=args.pushers,
        repositories=args.repositories,
        seed=seed,
        reference=args.reference,
        tagDeletes=not (args.no_tag_deletes or args.reference),
    )
    torture = Torture(config, out=lambda line: print(line, flush=True))
    torture.run()
    totals = torture.totals()
    failed = totals["lost"] or totals["corrupted"] or totals["problem"]
    if scratch is not None and not failed:
        shutil.rmtree(scratch, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
