"""
Disk trouble: the disk fills up (C{ENOSPC}) or fails (C{EIO}) while the registry receives a
blob or writes its journal.  The client is answered with a 5xx whose spec error body says
so (507 for a full disk, 500 otherwise), nothing acknowledged earlier is lost or changed,
reads go on being served, and once space is freed, pushes work again.

A real C{twistd ocid} runs on a small tmpfs filled by a ballast file beside its data
directory (this needs root; without it those tests are skipped).  C{EIO} cannot be had
from a real disk here, so an in-process registry, serving real HTTP on a loopback port,
gets it from injected file objects and fsync.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
from collections.abc import Iterator
from io import BufferedWriter
from pathlib import Path
from typing import Any, BinaryIO

import attrs
import pytest
import requests
import treq
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from ocid.http.api import RegistryAPI
from ocid.http.request import RegistrySite
from ocid.registry import Registry
from ocid.storage.uploads import appendFile
from tests.daemon import RegistryDaemon
from tests.registryclient import (
    OCI_MANIFEST,
    PushedImage,
    checkImage,
    digestOf,
    imageManifest,
    pushImage,
    snapshot,
)

MiB = 1024 * 1024
FILESYSTEM_SIZE = 48 * MiB


@attrs.define
class SmallDisk:
    """
    A tmpfs of L{FILESYSTEM_SIZE} bytes at C{mount}, holding the daemon's data directory
    and, when full, a ballast file beside it.
    """

    mount: Path
    daemon: RegistryDaemon

    @property
    def ballast(self) -> Path:
        return self.mount / "ballast"

    def fill(self, leave: int = 0) -> None:
        """
        Fill the filesystem with ballast, leaving about C{leave} bytes free.
        """
        with open(self.ballast, "ab", buffering=0) as f:
            for chunk in (MiB, 4096):
                block = b"\0" * chunk
                try:
                    while True:
                        f.write(block)
                except OSError as e:
                    assert e.errno == errno.ENOSPC, e
        if leave:
            os.truncate(self.ballast, max(0, self.ballast.stat().st_size - leave))

    def free(self) -> None:
        """
        Remove the ballast.
        """
        self.ballast.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmallDisk]:
    base = tmp_path_factory.mktemp("disk")
    mount = base / "fs"
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={FILESYSTEM_SIZE}", "tmpfs", str(mount)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    daemon = RegistryDaemon(mount / "data", base / "ocid.log")
    try:
        daemon.start()
        yield SmallDisk(mount, daemon)
    finally:
        if daemon.process is not None:
            daemon.stop()
        subprocess.run(["umount", str(mount)], check=True)


def assertFull(response: requests.Response) -> None:
    """
    C{response} is the 507 of a full disk, with the spec's error body saying so.
    """
    assert response.status_code == 507, (response.status_code, response.text)
    (error,) = response.json()["errors"]
    assert error["code"] == "UNKNOWN"
    assert "disk is full" in error["message"]
    assert error["detail"] == {"errno": "ENOSPC"}


def assertServing(disk: SmallDisk, images: list[PushedImage]) -> None:
    """
    Every image acknowledged so far pulls back byte for byte, and the listing
    endpoints answer.
    """
    url = disk.daemon.url
    with requests.Session() as http:
        assert http.get(url + "/v2/").status_code == 200
        catalog = http.get(url + "/v2/_catalog").json()["repositories"]
        for image in images:
            assert image.name in catalog
            checkImage(http, url, image)
            tags = http.get(f"{url}/v2/{image.name}/tags/list").json()["tags"]
            assert image.tag in tags


@pytest.fixture(scope="module")
def acknowledged(disk: SmallDisk) -> list[PushedImage]:
    """
    Images pushed before the disk fills up (and, as the tests go on, after it is freed).
    """
    with requests.Session() as http:
        return [pushImage(http, disk.daemon.url, "disk/before", "v1",
                          [os.urandom(512 * 1024), os.urandom(64 * 1024)])]


def test_blobUploadOnFullDisk(disk: SmallDisk, acknowledged: list[PushedImage]) -> None:
    """
    Blobs pushed into a disk with 2 MiB free: once one does not fit, its closing PUT is
    answered 507; the session is rolled back to the bytes it had (none), not left
    half-written; everything acknowledged before still pulls; after the ballast goes,
    the same PUT succeeds.
    """
    url = disk.daemon.url
    disk.fill(leave=2 * MiB)
    try:
        with requests.Session() as http:
            stored: dict[str, bytes] = {}
            refused = None
            for _ in range(10):
                blob = os.urandom(MiB)
                started = http.post(f"{url}/v2/disk/blobs/blobs/uploads/")
                assert started.status_code == 202, started.text
                location = started.headers["Location"]
                done = http.put(f"{url}{location}?digest={digestOf(blob)}", data=blob)
                if done.status_code == 201:
                    stored[digestOf(blob)] = blob
                    continue
                assertFull(done)
                refused = (location, blob)
                break
            assert refused is not None, "the disk never filled up"
            location, blob = refused
            status = http.get(url + location)
            assert status.status_code == 204
            assert status.headers["Range"] == "0-0"
            session = disk.mount / "data" / "uploads" / location.rsplit("/", 1)[1]
            assert (session / "data").stat().st_size == 0
            assert http.head(f"{url}/v2/disk/blobs/blobs/{digestOf(blob)}").status_code == 404
            assertServing(disk, acknowledged)
            for digest, data in stored.items():
                assert http.get(f"{url}/v2/disk/blobs/blobs/{digest}").content == data
    finally:
        disk.free()
    with requests.Session() as http:
        retried = http.put(f"{url}{location}?digest={digestOf(blob)}", data=blob)
        assert retried.status_code == 201, retried.text
        assert http.get(f"{url}/v2/disk/blobs/blobs/{digestOf(blob)}").content == blob


def test_chunkOnFullDiskIsRolledBack(disk: SmallDisk, acknowledged: list[PushedImage]) -> None:
    """
    A 4 MiB chunk ("Pushing a blob in chunks") into a full disk is answered 507 and taken
    back: the session still holds exactly its first, acknowledged 256 KiB, so the client
    resumes from there once space is freed and completes a correct blob.
    """
    url = disk.daemon.url
    blob = os.urandom(256 * 1024 + 4 * MiB)
    first = 256 * 1024
    with requests.Session() as http:
        location = http.post(f"{url}/v2/disk/chunks/blobs/uploads/").headers["Location"]
        one = http.patch(url + location, data=blob[:first],
                         headers={"Content-Range": f"0-{first - 1}"})
        assert one.status_code == 202
        disk.fill()
        try:
            two = http.patch(url + location, data=blob[first:],
                             headers={"Content-Range": f"{first}-{len(blob) - 1}"})
            assertFull(two)
            status = http.get(url + location)
            assert status.headers["Range"] == f"0-{first - 1}"
            assertServing(disk, acknowledged)
        finally:
            disk.free()
        again = http.patch(url + location, data=blob[first:],
                           headers={"Content-Range": f"{first}-{len(blob) - 1}"})
        assert again.status_code == 202, again.text
        done = http.put(f"{url}{location}?digest={digestOf(blob)}")
        assert done.status_code == 201, done.text
        assert http.get(f"{url}/v2/disk/chunks/blobs/{digestOf(blob)}").content == blob


def test_manifestOnFullDisk(disk: SmallDisk, acknowledged: list[PushedImage]) -> None:
    """
    A manifest pushed into a full disk is answered 507 and its tag does not appear;
    once space is freed the same push succeeds.
    """
    url = disk.daemon.url
    layer = os.urandom(100 * 1024)
    config = b'{"full": true}'
    with requests.Session() as http:
        image = pushImage(http, url, "disk/manifest", "v0", [layer])
        manifest = imageManifest(config, [layer])
        pushed = http.post(f"{url}/v2/disk/manifest/blobs/uploads/?digest={digestOf(config)}",
                           data=config)
        assert pushed.status_code == 201
        disk.fill()
        try:
            put = http.put(f"{url}/v2/disk/manifest/manifests/v1", data=manifest,
                           headers={"Content-Type": OCI_MANIFEST})
            assertFull(put)
            missing = http.get(f"{url}/v2/disk/manifest/manifests/v1",
                               headers={"Accept": OCI_MANIFEST})
            assert missing.status_code == 404
            assertServing(disk, [*acknowledged, image])
        finally:
            disk.free()
        put = http.put(f"{url}/v2/disk/manifest/manifests/v1", data=manifest,
                       headers={"Content-Type": OCI_MANIFEST})
        assert put.status_code == 201, put.text
    acknowledged.append(image)
    acknowledged.append(PushedImage("disk/manifest", "v1", manifest,
                                    {digestOf(config): config, digestOf(layer): layer}))


def test_journalAppendOnFullDisk(disk: SmallDisk, acknowledged: list[PushedImage]) -> None:
    """
    A change that needs only a journal append (tagging a stored manifest with 90 more
    tags, pages of journal) into a full disk is answered 507, and none of
    those tags appears; the journal is left appendable: once space is freed the same
    request succeeds, and everything survives a restart.
    """
    url = disk.daemon.url
    image = acknowledged[0]
    tags = [f"extra-{i:04d}-" + "t" * 30 for i in range(90)]
    query = "&".join(f"tag={t}" for t in tags)
    target = f"{url}/v2/{image.name}/manifests/{image.digest}?{query}"
    with requests.Session() as http:
        disk.fill()
        try:
            put = http.put(target, data=image.manifest, headers={"Content-Type": OCI_MANIFEST})
            assertFull(put)
            listed = http.get(f"{url}/v2/{image.name}/tags/list").json()["tags"]
            assert listed == [image.tag]
            assertServing(disk, acknowledged)
        finally:
            disk.free()
        put = http.put(target, data=image.manifest, headers={"Content-Type": OCI_MANIFEST})
        assert put.status_code == 201, put.text
        listed = http.get(f"{url}/v2/{image.name}/tags/list").json()["tags"]
        assert listed == sorted([image.tag, *tags])
    before = snapshot(disk.mount / "data" / "blobs")
    disk.daemon.stop()
    disk.daemon.start()
    assertServing(disk, acknowledged)
    assert snapshot(disk.mount / "data" / "blobs") == before
    with requests.Session() as http:
        listed = http.get(f"{url}/v2/{image.name}/tags/list").json()["tags"]
        assert listed == sorted([image.tag, *tags])


# EIO, injected into a registry serving real HTTP in this process.


@attrs.define
class FailingDisk:
    """
    Makes the next write or fsync given to it fail with C{EIO}, once armed.
    """

    failWrites: bool = False
    failFsyncs: bool = False

    def opener(self, path: Path) -> BinaryIO:
        """
        An upload session's opener: files whose writes fail while armed.
        """
        return _FailingFile(appendFile(path), self)

    def fsync(self, fd: int) -> None:
        if self.failFsyncs:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        os.fsync(fd)


class _FailingFile:
    """
    A file object whose C{write} fails with C{EIO} while its disk is armed (after
    writing part of the data, as a failing disk may).
    """

    def __init__(self, wrapped: BufferedWriter, disk: FailingDisk) -> None:
        self._wrapped = wrapped
        self._disk = disk

    def write(self, data: bytes) -> int:
        if self._disk.failWrites:
            self._wrapped.write(data[: len(data) // 2])
            self._wrapped.flush()
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return self._wrapped.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapped, name)


class InjectedEIOTests(TestCase):
    """
    A registry in this process on a loopback port, whose disk fails on demand.
    """

    @inlineCallbacks
    def setUp(self) -> Any:
        self.path = Path(self.mktemp())
        self.registry = Registry(self.path, reactor)
        self.registry.open()
        self.disk = FailingDisk()
        self.registry.uploads.opener = self.disk.opener
        # The journal's test hook: the fsync of each append to its log.
        self.registry.journal._log.fsync = self.disk.fsync  # type: ignore[union-attr]
        site = RegistrySite(RegistryAPI(self.registry).resource(), self.registry.uploads,
                            reactor)
        self.port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.url = f"http://127.0.0.1:{self.port.getHost().port}"
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.closed = False
        self.addCleanup(self.shutDown)
        yield None

    @inlineCallbacks
    def shutDown(self) -> Any:
        """
        Stop serving and close the registry (once).
        """
        if not self.closed:
            self.closed = True
            yield self.port.stopListening()
            yield self.registry.close()
        # The failed journal write and the 5xx it caused were logged as failures.
        self.flushLoggedErrors()

    @inlineCallbacks
    def call(self, method: str, path: str, data: bytes | None = None,
             headers: dict[str, str] | None = None) -> Any:
        response = yield treq.request(method, self.url + path, data=data, headers=headers,
                                      pool=self.pool)
        body = yield response.content()
        return response.code, response.headers, body

    @inlineCallbacks
    def pushBlobs(self, name: str, layer: bytes) -> Any:
        """
        Push a config and C{layer}; return the manifest of the two.
        """
        config = b'{"os":"linux"}'
        for blob in (config, layer):
            code, _, body = yield self.call(
                "POST", f"/v2/{name}/blobs/uploads/?digest={digestOf(blob)}", blob)
            self.assertEqual(code, 201, body)
        return imageManifest(config, [layer])

    @inlineCallbacks
    def pushManifest(self, name: str, tag: str, manifest: bytes) -> Any:
        code, _, body = yield self.call("PUT", f"/v2/{name}/manifests/{tag}", manifest,
                                        {"Content-Type": OCI_MANIFEST})
        return code, body

    def assertStorageError(self, code: int, body: bytes) -> None:
        self.assertEqual(code, 500, body)
        (error,) = json.loads(body)["errors"]
        self.assertEqual(error["code"], "UNKNOWN")
        self.assertIn("Input/output error", error["message"])
        self.assertEqual(error["detail"], {"errno": "EIO"})

    @inlineCallbacks
    def test_journalFsyncEIO(self) -> Any:
        """
        When the journal's fsync fails with EIO, the manifest push is answered 500 with
        the spec's error body naming the I/O error; the earlier push still pulls back,
        reads go on, further changes are refused (what the disk holds is unknown), and
        the registry reopened from disk holds the acknowledged state only.
        """
        manifest = yield self.pushBlobs("eio/app", os.urandom(300 * 1024))
        code, body = yield self.pushManifest("eio/app", "v1", manifest)
        self.assertEqual(code, 201, body)
        second = yield self.pushBlobs("eio/app", os.urandom(1000))
        self.disk.failFsyncs = True
        code, body = yield self.pushManifest("eio/app", "v2", second)
        self.assertStorageError(code, body)

        code, _, pulled = yield self.call("GET", "/v2/eio/app/manifests/v1",
                                          headers={"Accept": OCI_MANIFEST})
        self.assertEqual((code, pulled), (200, manifest))
        code, _, _ = yield self.call("GET", "/v2/eio/app/manifests/v2",
                                     headers={"Accept": OCI_MANIFEST})
        self.assertEqual(code, 404)
        self.disk.failFsyncs = False
        code, _, body = yield self.call("DELETE", "/v2/eio/app/manifests/v1")
        self.assertStorageError(code, body)

        yield self.shutDown()
        reopened = Registry(self.path, reactor)
        reopened.open()
        self.addCleanup(reopened.close)
        repository = reopened.repository("eio/app")
        self.assertEqual(sorted(repository.tags), ["v1"])
        self.assertEqual(repository.tags["v1"].hex, digestOf(manifest)[7:])

    @inlineCallbacks
    def test_uploadWriteEIO(self) -> Any:
        """
        When writing a chunk fails with EIO (half of it reached the file), the PATCH is
        answered 500 naming the I/O error and the session is rolled back to its
        acknowledged bytes; the same chunk sent again completes a correct blob.
        """
        blob = os.urandom(3 * MiB)
        code, headers, _ = yield self.call("POST", "/v2/eio/upload/blobs/uploads/")
        self.assertEqual(code, 202)
        location = headers.getRawHeaders("Location")[0]
        code, _, _ = yield self.call("PATCH", location, blob[:MiB],
                                     {"Content-Range": f"0-{MiB - 1}"})
        self.assertEqual(code, 202)
        self.disk.failWrites = True
        code, _, body = yield self.call("PATCH", location, blob[MiB:],
                                        {"Content-Range": f"{MiB}-{len(blob) - 1}"})
        self.assertStorageError(code, body)
        self.disk.failWrites = False
        code, headers, _ = yield self.call("GET", location)
        self.assertEqual((code, headers.getRawHeaders("Range")), (204, [f"0-{MiB - 1}"]))
        session = self.path / "uploads" / location.rsplit("/", 1)[1] / "data"
        self.assertEqual(session.read_bytes(), blob[:MiB])

        code, _, _ = yield self.call("PATCH", location, blob[MiB:],
                                     {"Content-Range": f"{MiB}-{len(blob) - 1}"})
        self.assertEqual(code, 202)
        code, _, body = yield self.call("PUT", f"{location}?digest={digestOf(blob)}")
        self.assertEqual(code, 201, body)
        code, _, pulled = yield self.call("GET", f"/v2/eio/upload/blobs/{digestOf(blob)}")
        self.assertEqual((code, pulled), (200, blob))
