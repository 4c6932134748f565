"""
Repository names that try to climb out of the data directory ("Pulling manifests": a
C{<name>} is path components of C{[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*} joined by C{/}, so
no component is ever C{..}).  Each is answered C{NAME_INVALID}, and nothing is written
beside the data directory.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from tests.daemon import RegistryDaemon
from tests.rawhttp import request
from tests.registryclient import OCI_MANIFEST, digestOf, imageManifest, snapshot

TRAVERSALS = [
    b"..",
    b"../escaped",
    b"../../escaped",
    b"ok/../../escaped",
    b"ok/../..",
    b"%2e%2e",
    b"%2E%2E/escaped",
    b"%2e%2e%2fescaped",
    b"%2e%2e%2f%2e%2e%2fescaped",
    b"ok%2f..%2f..%2fescaped",
    b".%2e/escaped",
    b"%252e%252e/escaped",
    b"..%5cescaped",
    b"ok/./escaped",
    b"ok//..//escaped",
    # An absolute name: "/v2//escaped/..." matches no endpoint at all (404 UNSUPPORTED).
    b"/escaped",
]


@attrs.frozen
class Traversed:
    daemon: RegistryDaemon
    base: Path


@pytest.fixture(scope="module")
def traversed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traversed]:
    """
    A daemon whose data directory's parent holds nothing else (its log lives elsewhere).
    """
    base = tmp_path_factory.mktemp("traversal")
    logs = tmp_path_factory.mktemp("traversal-log")
    daemon = RegistryDaemon(base / "data", logs / "ocid.log")
    daemon.start()
    yield Traversed(daemon, base)
    daemon.stop()


@pytest.mark.parametrize("name", TRAVERSALS, ids=[n.decode() for n in TRAVERSALS])
def test_traversalNameIsInvalid(traversed: Traversed, name: bytes) -> None:
    """
    Pushing a manifest, a monolithic blob, a new upload session or a mount into a name
    that climbs out of the data directory is answered 400 C{NAME_INVALID} (an absolute
    name, which no endpoint matches, may be a 404 C{UNSUPPORTED}), and the data
    directory's parent (and so anything a traversal could reach from the data directory
    in one or two steps) is byte for byte as before.
    """
    port = traversed.daemon.port
    before = snapshot(traversed.base)
    blob = b"escaped blob " + name
    manifest = imageManifest(b"{}", [])
    attempts = [
        request(port, b"PUT", b"/v2/" + name + b"/manifests/latest",
                [(b"Content-Type", OCI_MANIFEST.encode())], manifest),
        request(port, b"POST",
                b"/v2/" + name + b"/blobs/uploads/?digest=" + digestOf(blob).encode(),
                body=blob),
        request(port, b"POST", b"/v2/" + name + b"/blobs/uploads/"),
        request(port, b"POST",
                b"/v2/ok/blobs/uploads/?mount=" + digestOf(blob).encode() + b"&from=" + name),
        request(port, b"GET", b"/v2/" + name + b"/tags/list"),
        request(port, b"DELETE", b"/v2/" + name + b"/manifests/latest"),
    ]
    for response in attempts:
        if name.startswith(b"/") and response.status == 404:
            assert response.errorCodes() == ["UNSUPPORTED"], response.body
            continue
        assert response.status == 400, (response.status, response.body)
        assert response.errorCodes() == ["NAME_INVALID"], response.body
    assert snapshot(traversed.base) == before
    assert not (traversed.base / "escaped").exists()
    assert not (traversed.base.parent / "escaped").exists()


def test_nothingOutsideTheDataDirectory(traversed: Traversed) -> None:
    """
    After every traversal attempt, the data directory's parent holds only the data
    directory, whose top level holds only the registry's own directories.
    """
    assert [p.name for p in traversed.base.iterdir()] == ["data"]
    assert {p.name for p in (traversed.base / "data").iterdir()} <= {
        "blobs",
        "journal",
        "uploads",
    }
    assert list((traversed.base / "data" / "uploads").iterdir()) == []
