"""
Concurrent clients against a real C{twistd ocid}: sixteen pushing the same image and tag at
once, sixteen pushing different images to one tag, sixteen pulling one 64 MiB blob.  Every
request succeeds, the registry ends consistent (one tag, one copy of each blob, no
temporary files or upload sessions left) and stays so across a restart, and every byte
pulled is right.  Run with C{pytest -s} for the daemon's RSS.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest
import requests

from tests.daemon import RegistryDaemon
from tests.registryclient import (
    OCI_MANIFEST,
    PushedImage,
    checkImage,
    digestOf,
    pushBlob,
    pushImage,
    residentBytes,
)

MiB = 1024 * 1024
CLIENTS = 16
T = TypeVar("T")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryDaemon]:
    base = tmp_path_factory.mktemp("concurrency")
    registry = RegistryDaemon(base / "data", base / "ocid.log")
    registry.start()
    yield registry
    if registry.process is not None:
        registry.stop()


def together(work: Callable[[int], T], clients: int = CLIENTS) -> list[T]:
    """
    Run C{work(i)} for each of C{clients} threads, released at the same moment; return
    the results in order (re-raising the first failure).
    """
    barrier = threading.Barrier(clients)

    def run(i: int) -> T:
        barrier.wait()
        return work(i)

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(run, range(clients)))


def blobFiles(daemon: RegistryDaemon) -> list[Path]:
    return [p for p in (daemon.dataPath / "blobs").rglob("*") if p.is_file()]


def assertTidy(daemon: RegistryDaemon) -> None:
    """
    No temporary blob files and no upload sessions are left behind.
    """
    leftovers = [p for p in blobFiles(daemon) if p.name.startswith(".")]
    assert leftovers == []
    assert list((daemon.dataPath / "uploads").iterdir()) == []


def restart(daemon: RegistryDaemon) -> None:
    """
    Stop the daemon cleanly (twistd ends by re-raising the SIGTERM) and start it again.
    """
    shutDowns = daemon.log().count("Server Shut Down.")
    daemon.stop()
    assert daemon.log().count("Server Shut Down.") == shutDowns + 1
    daemon.start()


def test_samePushSixteenTimesAtOnce(daemon: RegistryDaemon) -> None:
    """
    Sixteen clients push the same image (three 1 MiB layers) under the same tag at once
    ("Pushing blobs", "Pushing Manifests"): every request succeeds, the tag names that
    manifest, each blob is stored once, the image pulls back byte for byte, and so it
    stays after a restart.
    """
    layers = [os.urandom(MiB) for _ in range(3)]
    config = b'{"architecture":"amd64","os":"linux","concurrency":"same"}'
    name = "concurrency/same"

    def push(_: int) -> PushedImage:
        with requests.Session() as http:
            return pushImage(http, daemon.url, name, "latest", layers, config)

    images = together(push)
    image = images[0]
    assert {i.digest for i in images} == {image.digest}
    with requests.Session() as http:
        checkImage(http, daemon.url, image)
        tags = http.get(f"{daemon.url}/v2/{name}/tags/list").json()
        assert tags == {"name": name, "tags": ["latest"]}
        catalog = http.get(f"{daemon.url}/v2/_catalog").json()["repositories"]
        assert catalog.count(name) == 1
    stored = {p.name for p in blobFiles(daemon)}
    for digest in [*image.blobs, image.digest]:
        assert digest.split(":")[1] in stored
    assertTidy(daemon)

    restart(daemon)
    with requests.Session() as http:
        checkImage(http, daemon.url, image)
        tags = http.get(f"{daemon.url}/v2/{name}/tags/list").json()
        assert tags == {"name": name, "tags": ["latest"]}


def test_differentPushesToOneTagAtOnce(daemon: RegistryDaemon) -> None:
    """
    Sixteen clients push sixteen different images to the same tag at once: all succeed,
    the tag ends naming one of them, and every one of them pulls back by digest, also
    after a restart.
    """
    name = "concurrency/racing"

    def push(i: int) -> PushedImage:
        with requests.Session() as http:
            return pushImage(http, daemon.url, name, "latest", [os.urandom(256 * 1024)],
                             f'{{"os":"linux","client":{i}}}'.encode())

    images = together(push)
    digests = {i.digest for i in images}
    assert len(digests) == CLIENTS

    def check() -> None:
        with requests.Session() as http:
            tagged = http.head(f"{daemon.url}/v2/{name}/manifests/latest",
                               headers={"Accept": OCI_MANIFEST})
            assert tagged.status_code == 200
            assert tagged.headers["Docker-Content-Digest"] in digests
            for image in images:
                pulled = http.get(f"{daemon.url}/v2/{name}/manifests/{image.digest}",
                                  headers={"Accept": OCI_MANIFEST})
                assert pulled.content == image.manifest
                for digest, data in image.blobs.items():
                    assert http.get(f"{daemon.url}/v2/{name}/blobs/{digest}").content == data

    check()
    assertTidy(daemon)
    restart(daemon)
    check()


def test_sixteenPullsOfOneLargeBlob(daemon: RegistryDaemon) -> None:
    """
    Sixteen clients pull the same 64 MiB blob at once ("Pulling blobs"): each receives
    every byte (length and digest match), and the daemon streams rather than holding the
    blob in memory per client (peak RSS growth well under one copy per client).
    """
    blob = os.urandom(64 * MiB)
    digest = digestOf(blob)
    name = "concurrency/large"
    with requests.Session() as http:
        pushed = pushBlob(http, daemon.url, name, blob, timeout=300)
        assert pushed.status_code == 201, pushed.text
    del blob
    assert daemon.process is not None
    pid = daemon.process.pid
    before = residentBytes(pid)
    peak = [before]
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], residentBytes(pid))

    def pull(_: int) -> tuple[int, str]:
        hasher = hashlib.sha256()
        length = 0
        with requests.get(f"{daemon.url}/v2/{name}/blobs/{digest}", stream=True,
                          timeout=300) as response:
            assert response.status_code == 200
            assert response.headers["Docker-Content-Digest"] == digest
            assert int(response.headers["Content-Length"]) == 64 * MiB
            for chunk in response.iter_content(1024 * 1024):
                hasher.update(chunk)
                length += len(chunk)
        return length, "sha256:" + hasher.hexdigest()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        results = together(pull)
    finally:
        done.set()
        watcher.join()
    after = residentBytes(pid)
    print(f"\nRSS around 16 concurrent 64 MiB pulls: {before / MiB:.1f} MiB before, "
          f"{peak[0] / MiB:.1f} MiB peak, {after / MiB:.1f} MiB after")
    assert results == [(64 * MiB, digest)] * CLIENTS
    assert peak[0] - before < 256 * MiB
