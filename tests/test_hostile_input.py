"""
Hostile input against a real C{twistd ocid}: malformed names, tags, digests, manifests,
upload requests, ranges and HTTP framing, sent as raw bytes over a socket so that no client
library normalises them.  Every one must get a 4xx with the spec's error body ("Error
Codes"), never a 5xx or a dropped connection, and must change nothing stored: afterwards
the data directory (blobs, journal, uploads) and its parent hold exactly the bytes they held
before.

Run with C{pytest -s} to see how many inputs were tried and the status codes they got.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import requests

from tests.daemon import RegistryDaemon
from tests.rawhttp import build, exchange
from tests.registryclient import (
    OCI_MANIFEST,
    PushedImage,
    checkImage,
    digestOf,
    imageManifest,
    pushImage,
    snapshot,
)
from tests.spec_client import SPEC_ERROR_CODES

REPO = "hostile/app"
SESSION_BYTES = b"abcd"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


@attrs.frozen
class Case:
    """
    One hostile request.

    @ivar codes: the error codes any of which the answer must carry (C{None}: any code
        of the spec's table).
    @ivar statuses: the statuses allowed (C{None}: any 4xx).
    @ivar rangeCase: a C{Range} header RFC 9110 lets a server ignore: 200 with the whole
        blob, or 206 / 416, are all correct.
    """

    label: str
    data: bytes = attrs.field(repr=False)
    codes: frozenset[str] | None = None
    statuses: frozenset[int] | None = None
    head: bool = False
    rangeCase: bool = False


@attrs.frozen
class Seeded:
    """
    What the registry held before the barrage.
    """

    daemon: RegistryDaemon
    base: Path
    image: PushedImage
    layer: bytes = attrs.field(repr=False)
    session: str


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """
    A daemon holding one pushed image and one upload session with 4 bytes in it.  The
    data directory's parent (C{base}) holds nothing else; the log lives elsewhere.
    """
    base = tmp_path_factory.mktemp("hostile")
    logs = tmp_path_factory.mktemp("hostile-log")
    daemon = RegistryDaemon(base / "data", logs / "ocid.log")
    daemon.start()
    try:
        with requests.Session() as http:
            layer = bytes(range(256)) * 64
            image = pushImage(http, daemon.url, REPO, "v1", [layer])
            started = http.post(f"{daemon.url}/v2/{REPO}/blobs/uploads/")
            assert started.status_code == 202
            location = started.headers["Location"]
            patched = http.patch(
                daemon.url + location,
                data=SESSION_BYTES,
                headers={"Content-Range": "0-3", "Content-Type": "application/octet-stream"},
            )
            assert patched.status_code == 202, patched.text
        yield Seeded(daemon, base, image, layer, location.rsplit("/", 1)[1])
    finally:
        daemon.stop()


def req(
    method: str,
    target: str | bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"",
    contentLength: bytes | None = None,
) -> bytes:
    """
    The raw bytes of a request; C{target} is sent exactly as given.
    """
    if isinstance(target, str):
        target = target.encode()
    return build(method.encode(), target, headers or [], body, contentLength)


def codes(*names: str) -> frozenset[str]:
    return frozenset(names)


def nameCases(seeded: Seeded) -> list[Case]:
    """
    Repository names outside the spec's grammar ("Pulling manifests": C{<name>}), on
    every kind of endpoint.
    """
    badNames = [
        "..",
        "../etc",
        "hostile/../etc",
        "hostile/..",
        "%2e%2e",
        "%2e%2e/%2e%2e/etc",
        "hostile/%2E%2E/app",
        "hostile%2F..%2F..%2Fetc",
        "hostile//app",
        "hostile/app/",
        ".hostile",
        "hostile/.app",
        "HOSTILE/APP",
        "Hostile",
        "caf%C3%A9",
        "%E2%80%AE/app",
        "hostile%00app",
        "hostile%20app",
        "-hostile",
        "hostile-",
        "hostile..app",
        "hostile___app",
        "hostile/~app",
        "x" * 300,
        "/".join(["abc"] * 80),
    ]
    digest = digestOf(seeded.layer)
    manifest = seeded.image.manifest
    cases = []
    for name in badNames:
        for method, target, body, extra in [
            ("GET", f"/v2/{name}/tags/list", b"", []),
            ("GET", f"/v2/{name}/manifests/v1", b"", []),
            ("PUT", f"/v2/{name}/manifests/v1", manifest,
             [(b"Content-Type", OCI_MANIFEST.encode())]),
            ("DELETE", f"/v2/{name}/manifests/v1", b"", []),
            ("HEAD", f"/v2/{name}/blobs/{digest}", b"", []),
            ("POST", f"/v2/{name}/blobs/uploads/", b"", []),
            ("POST", f"/v2/{name}/blobs/uploads/?digest={digest}", seeded.layer, []),
            ("POST", f"/v2/{REPO}/blobs/uploads/?mount={digest}&from={name}", b"", []),
        ]:
            cases.append(
                Case(
                    f"name {name[:40]!r}: {method} {target[:60]}",
                    req(method, target, extra, body),
                    codes("NAME_INVALID"),
                    head=method == "HEAD",
                )
            )
    # Bytes no client library would send in a URL: the request line itself is malformed.
    for raw in [b"/v2/caf\xc3\xa9/tags/list", b"/v2/a b/tags/list", b"/v2/a\x00b/tags/list"]:
        cases.append(Case(f"raw name {raw!r}", req("GET", raw), codes("UNSUPPORTED"), codes_400()))
    return cases


def codes_400() -> frozenset[int]:
    return frozenset({400})


def tagCases() -> list[Case]:
    """
    Tags outside C{[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}} ("Pulling manifests").
    """
    badTags = ["a" * 129, ".dot", "-dash", "%2e%2e", "t%2Fx", "t@g", "t%00", "caf%C3%A9",
               "t%20x", "t:x"]
    manifest = imageManifest(b"{}", [])
    cases = []
    for tag in badTags:
        # An encoded slash splits the path: then no endpoint matches (404 UNSUPPORTED).
        expected = codes("MANIFEST_INVALID", "DIGEST_INVALID", "UNSUPPORTED")
        cases += [
            Case(f"tag {tag[:20]!r}: GET", req("GET", f"/v2/{REPO}/manifests/{tag}"), expected),
            Case(f"tag {tag[:20]!r}: HEAD", req("HEAD", f"/v2/{REPO}/manifests/{tag}"),
                 expected, head=True),
            Case(f"tag {tag[:20]!r}: DELETE",
                 req("DELETE", f"/v2/{REPO}/manifests/{tag}"), expected),
            Case(f"tag {tag[:20]!r}: PUT",
                 req("PUT", f"/v2/{REPO}/manifests/{tag}",
                     [(b"Content-Type", OCI_MANIFEST.encode())], manifest), expected),
            Case(f"tag {tag[:20]!r}: PUT ?tag=",
                 req("PUT", f"/v2/{REPO}/manifests/v2?tag={tag}",
                     [(b"Content-Type", OCI_MANIFEST.encode())], manifest), expected),
        ]
    return cases


def digestCases(seeded: Seeded) -> list[Case]:
    """
    Digests outside the descriptor grammar, of unknown algorithms, of the wrong length or
    in uppercase hex (OCI image spec, "Digests").
    """
    hexPart = digestOf(seeded.layer).split(":")[1]
    badDigests = [
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709",
        "foo:" + hexPart,
        "sha256:" + hexPart[:63],
        "sha256:" + hexPart + "0",
        "sha256:" + hexPart.upper(),
        "SHA256:" + hexPart,
        "sha256:" + "g" * 64,
        "sha512:" + hexPart,
        "sha256:",
        ":" + hexPart,
        "sha256:" + hexPart + "%00",
        "sha256:..%2F..%2Fjournal",
        "sha256:" + "a" * 5000,
    ]
    body = seeded.layer
    cases = []
    for digest in badDigests:
        label = f"digest {digest[:24]!r}"
        # An encoded slash splits the path: then no endpoint matches (404 UNSUPPORTED).
        expected = codes("DIGEST_INVALID", "UNSUPPORTED") if "%2F" in digest else codes(
            "DIGEST_INVALID"
        )
        cases += [
            Case(f"{label}: GET blob", req("GET", f"/v2/{REPO}/blobs/{digest}"), expected),
            Case(f"{label}: HEAD blob", req("HEAD", f"/v2/{REPO}/blobs/{digest}"), expected,
                 head=True),
            Case(f"{label}: DELETE blob", req("DELETE", f"/v2/{REPO}/blobs/{digest}"),
                 expected),
            Case(f"{label}: GET manifest",
                 req("GET", f"/v2/{REPO}/manifests/{digest}"), expected),
            Case(f"{label}: PUT manifest",
                 req("PUT", f"/v2/{REPO}/manifests/{digest}",
                     [(b"Content-Type", OCI_MANIFEST.encode())], seeded.image.manifest),
                 expected),
            Case(f"{label}: POST mount",
                 req("POST", f"/v2/{REPO}/blobs/uploads/?mount={digest}&from={REPO}"),
                 expected),
            Case(f"{label}: POST monolithic",
                 req("POST", f"/v2/{REPO}/blobs/uploads/?digest={digest}", body=body),
                 expected),
            Case(f"{label}: PUT session",
                 req("PUT", f"/v2/{REPO}/blobs/uploads/{seeded.session}?digest={digest}",
                     body=b"efgh"),
                 expected),
            Case(f"{label}: GET referrers",
                 req("GET", f"/v2/{REPO}/referrers/{digest}"), expected),
        ]
    cases.append(
        Case("POST digest-algorithm=md5",
             req("POST", f"/v2/{REPO}/blobs/uploads/?digest-algorithm=md5"),
             codes("DIGEST_INVALID"))
    )
    cases.append(
        Case("POST monolithic, digest of other bytes",
             req("POST", f"/v2/{REPO}/blobs/uploads/?digest={digestOf(b'other')}",
                 body=b"these bytes"),
             codes("DIGEST_INVALID"))
    )
    return cases


def manifestCases(seeded: Seeded) -> list[Case]:
    """
    Manifests that are not JSON, not objects, not valid OCI or Docker manifests, that
    disagree with their C{Content-Type}, reference unknown blobs, or exceed the size limit
    ("Pushing Manifests").
    """
    config = next(d for d, b in seeded.image.blobs.items() if b != seeded.layer)
    layerDigest = digestOf(seeded.layer)
    good = json.loads(seeded.image.manifest)

    def variant(**changes: object) -> bytes:
        manifest = dict(good)
        for key, value in changes.items():
            if value is None:
                manifest.pop(key, None)
            else:
                manifest[key] = value
        return json.dumps(manifest).encode()

    def layer(**changes: object) -> dict[str, object]:
        descriptor = {"mediaType": "application/vnd.oci.image.layer.v1.tar",
                      "digest": layerDigest, "size": len(seeded.layer)}
        descriptor.update(changes)
        return descriptor

    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode()
    invalid = codes("MANIFEST_INVALID")
    bodies: list[tuple[str, bytes, str | None, frozenset[str]]] = [
        ("empty", b"", OCI_MANIFEST, invalid),
        ("truncated JSON", b'{"schemaVersion": 2, "config": {', OCI_MANIFEST, invalid),
        ("JSON array", b"[]", OCI_MANIFEST, invalid),
        ("JSON string", b'"manifest"', OCI_MANIFEST, invalid),
        ("JSON null", b"null", OCI_MANIFEST, invalid),
        ("JSON number", b"42", OCI_MANIFEST, invalid),
        ("not UTF-8", b"\xff\xfe{\x00}", OCI_MANIFEST, invalid),
        ("nested 100000 deep", b"[" * 100000 + b"]" * 100000, OCI_MANIFEST, invalid),
        ("objects nested deep", b'{"a":' * 50000 + b"1" + b"}" * 50000, None, invalid),
        ("duplicate NaN", b'{"schemaVersion": NaN}', OCI_MANIFEST, invalid),
        ("schemaVersion 1", variant(schemaVersion=1), OCI_MANIFEST, invalid),
        ("schemaVersion text", variant(schemaVersion="2"), OCI_MANIFEST, invalid),
        ("schemaVersion true", variant(schemaVersion=True), OCI_MANIFEST, invalid),
        ("unknown mediaType", variant(mediaType="text/plain"), "text/plain", invalid),
        ("no config", variant(config=None), OCI_MANIFEST, invalid),
        ("config not object", variant(config="x"), OCI_MANIFEST, invalid),
        ("layers not list", variant(layers={"a": 1}), OCI_MANIFEST, invalid),
        ("layer digest bad", variant(layers=[layer(digest="sha256:xyz")]), OCI_MANIFEST,
         invalid),
        ("layer size negative", variant(layers=[layer(size=-1)]), OCI_MANIFEST, invalid),
        ("layer size text", variant(layers=[layer(size="12")]), OCI_MANIFEST, invalid),
        ("layer no mediaType", variant(layers=[{"digest": layerDigest, "size": 1}]),
         OCI_MANIFEST, invalid),
        ("annotations not strings", variant(annotations={"a": 1}), OCI_MANIFEST, invalid),
        ("Content-Type index, body image manifest", seeded.image.manifest, OCI_INDEX,
         invalid),
        ("Content-Type docker, body OCI", seeded.image.manifest, DOCKER_MANIFEST, invalid),
        ("Content-Type image, body index", index, OCI_MANIFEST, invalid),
        ("unknown layer", variant(layers=[layer(digest=digestOf(b"never pushed"))]),
         OCI_MANIFEST, codes("MANIFEST_BLOB_UNKNOWN")),
        ("unknown config", variant(config={"mediaType": "application/json",
                                           "digest": digestOf(b"nope"), "size": 4}),
         OCI_MANIFEST, codes("MANIFEST_BLOB_UNKNOWN")),
    ]
    assert config
    cases = [
        Case(f"manifest {label}",
             req("PUT", f"/v2/{REPO}/manifests/bad",
                 [(b"Content-Type", ct.encode())] if ct else [], body),
             expected)
        for label, body, ct, expected in bodies
    ]
    big = variant(annotations={"padding": "x" * (4 * 1024 * 1024)})
    cases.append(
        Case("manifest over 4 MiB",
             req("PUT", f"/v2/{REPO}/manifests/big", [(b"Content-Type", OCI_MANIFEST.encode())],
                 big),
             invalid, frozenset({413}))
    )
    cases.append(
        Case("manifest by a digest it does not have",
             req("PUT", f"/v2/{REPO}/manifests/{digestOf(b'other')}",
                 [(b"Content-Type", OCI_MANIFEST.encode())], seeded.image.manifest),
             codes("DIGEST_INVALID"))
    )
    return cases


def uploadCases(seeded: Seeded) -> list[Case]:
    """
    Chunks that skip or rewind bytes ("Pushing a blob in chunks": a chunk out of order is
    a 416), unknown and path-like session ids.
    """
    session = f"/v2/{REPO}/blobs/uploads/{seeded.session}"
    outOfOrder = codes("BLOB_UPLOAD_INVALID")
    cases = [
        Case(f"PATCH Content-Range {cr!r}",
             req("PATCH", session, [(b"Content-Range", cr)], body), outOfOrder,
             frozenset({416}))
        for cr, body in [
            (b"10-13", b"wxyz"),
            (b"0-3", b"wxyz"),
            (b"3-6", b"wxyz"),
            (b"5-8", b"wxyz"),
            (b"4-3", b""),
            (b"4-", b"wxyz"),
            (b"-4", b"wxyz"),
            (b"abc", b"wxyz"),
            (b"4-99999999999999999999999", b"wxyz"),
            (b"4-7/3", b"wxyz"),
        ]
    ]
    cases += [
        Case("PATCH Content-Range length disagrees with body",
             req("PATCH", session, [(b"Content-Range", b"4-7")], b"wx"),
             codes("SIZE_INVALID")),
        Case("PUT session without digest",
             req("PUT", session, body=b"wxyz"), codes("DIGEST_INVALID")),
        Case("PUT session with empty digest",
             req("PUT", session + "?digest=", body=b"wxyz"), codes("DIGEST_INVALID")),
        Case("PUT session, Content-Range skipping",
             req("PUT", session + f"?digest={digestOf(b'abcdwxyz')}",
                 [(b"Content-Range", b"8-11")], b"wxyz"),
             outOfOrder, frozenset({416})),
    ]
    unknown = codes("BLOB_UPLOAD_UNKNOWN", "UNSUPPORTED")
    ids = [
        "00000000-0000-0000-0000-000000000000",
        seeded.session.upper(),
        seeded.session[:-1],
        seeded.session + "0",
        "..",
        "%2e%2e",
        "..%2F..%2Fjournal%2Flog",
        "..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "%2Fetc%2Fpasswd",
        "a%2Fb",
        "x" * 5000,
        seeded.session + "%00",
    ]
    for sid in ids:
        target = f"/v2/{REPO}/blobs/uploads/{sid}"
        cases += [
            Case(f"session {sid[:30]!r}: GET", req("GET", target), unknown),
            Case(f"session {sid[:30]!r}: PATCH", req("PATCH", target, body=b"wxyz"), unknown),
            Case(f"session {sid[:30]!r}: PUT",
                 req("PUT", target + f"?digest={digestOf(b'wxyz')}", body=b"wxyz"), unknown),
            Case(f"session {sid[:30]!r}: DELETE", req("DELETE", target), unknown),
        ]
    # The real session, under another repository.
    other = f"/v2/hostile/other/blobs/uploads/{seeded.session}"
    cases += [
        Case("session under another repository: GET", req("GET", other),
             codes("BLOB_UPLOAD_UNKNOWN")),
        Case("session under another repository: PATCH", req("PATCH", other, body=b"wxyz"),
             codes("BLOB_UPLOAD_UNKNOWN")),
        Case("session under another repository: DELETE", req("DELETE", other),
             codes("BLOB_UPLOAD_UNKNOWN")),
    ]
    return cases


def rangeCases(seeded: Seeded) -> list[Case]:
    """
    Absurd C{Range} headers on a stored blob ("Pulling blobs").
    """
    target = f"/v2/{REPO}/blobs/{digestOf(seeded.layer)}"
    ranges = [
        b"bytes=99999999999999999999999-",
        b"bytes=" + b"9" * 5000 + b"-",
        b"bytes=-" + b"9" * 5000,
        b"bytes=5-2",
        b"bytes=abc",
        b"bytes=--1",
        b"bytes=-0",
        b"bytes=1000000-",
        b"bytes=" + b",".join([b"0-0"] * 200),
        b"bytes=0-0," * 100,
        b"items=0-1",
        b"bytes=\xff-\xfe",
    ]
    cases = [
        Case(f"Range {r[:30]!r}", req("GET", target, [(b"Range", r)]), None,
             frozenset({200, 206, 416}), rangeCase=True)
        for r in ranges
    ]
    cases.append(
        Case("Range of 9000 bytes", req("GET", target, [(b"Range", b"bytes=" + b"1" * 9000)]),
             codes("UNSUPPORTED"), frozenset({431}))
    )
    return cases


def framingCases() -> list[Case]:
    """
    Broken HTTP: request lines, headers, Content-Length and chunked bodies, oversized
    heads, unknown methods and query parameters.
    """
    malformed = codes("UNSUPPORTED")
    r400 = frozenset({400})
    cases = [
        Case("request line garbage", b"GARBAGE\r\n\r\n", malformed, r400),
        Case("TLS ClientHello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 500,
             malformed, r400),
        Case("binary before request line", b"\x00GET /v2/ HTTP/1.1\r\n\r\n", malformed, r400),
        Case("HTTP/9.9", b"GET /v2/ HTTP/9.9\r\nConnection: close\r\n\r\n", malformed, r400),
        Case("HTTP/0.9 request", b"GET /v2/\r\n\r\n", malformed, r400),
        Case("four-part request line", b"GET /v2/ x HTTP/1.1\r\n\r\n", malformed, r400),
        Case("header without colon", b"GET /v2/ HTTP/1.1\r\nNoColon\r\n\r\n", malformed, r400),
        Case("header name with space", b"GET /v2/ HTTP/1.1\r\nBad Name: x\r\n\r\n",
             malformed, r400),
        Case("header value with NUL", b"GET /v2/ HTTP/1.1\r\nX: a\x00b\r\n\r\n", malformed,
             r400),
        Case("request line of 10 KiB",
             b"GET /v2/" + b"a" * 10240 + b"/tags/list HTTP/1.1\r\n\r\n", malformed,
             frozenset({414})),
        Case("header line of 10 KiB", b"GET /v2/ HTTP/1.1\r\nX: " + b"b" * 10240 + b"\r\n\r\n",
             malformed, frozenset({431})),
        Case("150 headers", b"GET /v2/ HTTP/1.1\r\n" + b"X-A: b\r\n" * 150 + b"\r\n",
             malformed, frozenset({431})),
        Case("17 KiB of headers",
             b"GET /v2/ HTTP/1.1\r\n" + (b"X-A: " + b"b" * 1000 + b"\r\n") * 17 + b"\r\n",
             malformed, frozenset({431})),
        Case("GET *", b"GET * HTTP/1.1\r\nConnection: close\r\n\r\n", malformed,
             frozenset({405})),
        Case("unknown method", req("FROB", "/v2/"), malformed, frozenset({405})),
        Case("PATCH on /v2/", req("PATCH", "/v2/", body=b"x"), malformed, frozenset({405})),
        Case("DELETE on tags list", req("DELETE", f"/v2/{REPO}/tags/list"), malformed,
             frozenset({405})),
        Case("no such endpoint", req("GET", "/v2/hostile/app/nothing/here"), malformed,
             frozenset({404})),
        Case("outside /v2/", req("GET", "/etc/passwd"), malformed, frozenset({404})),
        Case("outside /v2/ by ..", req("GET", "/v2/../../etc/passwd"), None),
    ]
    for label, extra in [
        ("n=abc", "n=abc"),
        ("n=-1", "n=-1"),
        ("n=superscript two", "n=%C2%B2"),
        ("n of 5000 digits", "n=" + "9" * 5000),
        ("n=1e3", "n=1e3"),
    ]:
        cases.append(Case(f"catalog {label}", req("GET", f"/v2/_catalog?{extra}"),
                          malformed, r400))
        cases.append(Case(f"tags list {label}", req("GET", f"/v2/{REPO}/tags/list?{extra}"),
                          malformed, r400))
    return cases


def bodyFramingCases(seeded: Seeded) -> list[Case]:
    """
    Invalid C{Content-Length} and chunked framing on an upload chunk (the one kind of body
    written to disk as it arrives), on a manifest and on a monolithic upload.
    """
    session = f"/v2/{REPO}/blobs/uploads/{seeded.session}".encode()
    manifest = f"/v2/{REPO}/manifests/framing".encode()
    monolithic = f"/v2/{REPO}/blobs/uploads/?digest={digestOf(b'wxyz')}".encode()
    malformed = codes("UNSUPPORTED")
    r400 = frozenset({400})
    cases = []
    for label, target in [("PATCH", session), ("PUT manifest", manifest),
                          ("POST monolithic", monolithic)]:
        method = b"PUT" if label == "PUT manifest" else label.split()[0].encode()
        head = method + b" " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        for what, headers, body in [
            ("Content-Length abc", b"Content-Length: abc\r\n", b"wxyz"),
            ("Content-Length -1", b"Content-Length: -1\r\n", b"wxyz"),
            ("Content-Length 1e3", b"Content-Length: 1e3\r\n", b"wxyz"),
            ("Content-Length +4", b"Content-Length: +4\r\n", b"wxyz"),
            ("Content-Length 0x4", b"Content-Length: 0x4\r\n", b"wxyz"),
            ("two Content-Lengths", b"Content-Length: 4\r\nContent-Length: 5\r\n", b"wxyz"),
            ("Content-Length list", b"Content-Length: 4, 4\r\n", b"wxyz"),
            ("Content-Length and chunked",
             b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", b"4\r\nwxyz\r\n0\r\n\r\n"),
            ("Transfer-Encoding gzip", b"Transfer-Encoding: gzip\r\n", b"wxyz"),
            ("chunk size not hex", b"Transfer-Encoding: chunked\r\n", b"zz\r\nwxyz\r\n0\r\n\r\n"),
            ("good chunk then a bad one", b"Transfer-Encoding: chunked\r\n",
             b"4\r\nwxyz\r\nq\r\nmore\r\n0\r\n\r\n"),
            ("chunk longer than its size", b"Transfer-Encoding: chunked\r\n",
             b"2\r\nwxyz\r\n0\r\n\r\n"),
        ]:
            cases.append(Case(f"{label}: {what}", head + headers + b"\r\n" + body,
                              malformed, r400))
    return cases


def allCases(seeded: Seeded) -> list[Case]:
    return (
        nameCases(seeded)
        + tagCases()
        + digestCases(seeded)
        + manifestCases(seeded)
        + uploadCases(seeded)
        + rangeCases(seeded)
        + framingCases()
        + bodyFramingCases(seeded)
    )


def check(case: Case, status: int, codesSeen: list[str], body: bytes,
          seeded: Seeded) -> str | None:
    """
    What is wrong with the answer to C{case}, if anything.
    """
    if status == 0:
        return "connection closed without an answer"
    if status >= 500:
        return f"server error {status}"
    if case.rangeCase and status in (200, 206):
        if status == 200 and body != seeded.layer:
            return "200 to a Range request without the whole blob"
        return None
    if case.statuses is not None and status not in case.statuses:
        return f"status {status}, expected one of {sorted(case.statuses)}"
    if not 400 <= status < 500:
        return f"status {status} is not a 4xx"
    if case.head:
        # "HEAD" answers carry no body; the status is what the spec asks for.
        return None
    if not codesSeen:
        return f"no spec error body: {body[:120]!r}"
    if not set(codesSeen) <= SPEC_ERROR_CODES:
        return f"error codes {codesSeen} are not the spec's"
    if case.codes is not None and not set(codesSeen) & case.codes:
        return f"error codes {codesSeen}, expected one of {sorted(case.codes)}"
    return None


def test_hostileInputIsRefusedAndChangesNothing(seeded: Seeded) -> None:
    """
    Every hostile request gets a 4xx with the spec's error body ("Error Codes"): never a
    5xx, never a dropped connection; afterwards the data directory and its parent hold
    exactly what they held before, the upload session still holds its 4 bytes, and the
    image pushed before pulls back byte for byte.
    """
    daemon = seeded.daemon
    before = snapshot(seeded.base)
    assert any(path.startswith("data/blobs/") for path in before)
    assert any(path.startswith("data/journal/log") for path in before)
    cases = allCases(seeded)
    histogram: collections.Counter[int] = collections.Counter()
    failures = []
    for case in cases:
        response = exchange(daemon.port, case.data, head=case.head)
        histogram[response.status] += 1
        problem = check(case, response.status, response.errorCodes(), response.body, seeded)
        if problem is not None:
            failures.append(f"{case.label}: {problem}")
    after = snapshot(seeded.base)

    print(f"\nhostile input: {len(cases)} requests; status codes:")
    for status, count in sorted(histogram.items()):
        print(f"  {status}: {count}")

    assert failures == [], "\n".join(failures)
    assert len(cases) >= 300
    changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    assert changed == set(), sorted(changed)
    with requests.Session() as http:
        checkImage(http, daemon.url, seeded.image)
        status = http.get(f"{daemon.url}/v2/{REPO}/blobs/uploads/{seeded.session}")
        assert status.status_code == 204
        assert status.headers["Range"] == "0-3"
    assert "Traceback" not in daemon.log()
