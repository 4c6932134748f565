"""
The journal end to end: a real C{twistd ocid} on a loopback port, pushed to over HTTP,
stopped or killed, its journal damaged the ways a crash (or a bad disk) does, started again.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from ocid.journal import TagManifest, encodeTransaction
from ocid.journal.generate import smallImage, writeManyTags
from ocid.journal.log import FRAME, LOG_MAGIC, frame
from tests.daemon import RegistryDaemon
from tests.registryclient import (
    OCI_MANIFEST,
    PushedImage,
    checkImage,
    digestOf,
    pushImage,
)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[RegistryDaemon]:
    """
    A registry daemon on C{tmp_path / "data"}, not started; killed after the test.
    """
    registry = RegistryDaemon(tmp_path / "data", tmp_path / "registry.log")
    try:
        yield registry
    finally:
        registry.kill()


def currentLog(daemon: RegistryDaemon) -> Path:
    """
    The log the daemon appends to: that of the newest generation.
    """
    logs = (daemon.dataPath / "journal").glob("log.*")
    return max(logs, key=lambda path: int(path.name.split(".")[1]))


def frameOffsets(path: Path) -> list[int]:
    """
    The offset of every frame of the (intact) log at C{path}.
    """
    data = path.read_bytes()
    offsets = []
    offset = len(LOG_MAGIC)
    while offset < len(data):
        offsets.append(offset)
        length, _ = FRAME.unpack_from(data, offset)
        offset += FRAME.size + length
    return offsets


def manifestStatus(session: requests.Session, daemon: RegistryDaemon, name: str, tag: str) -> int:
    response = session.get(
        f"{daemon.url}/v2/{name}/manifests/{tag}", headers={"Accept": OCI_MANIFEST}
    )
    return response.status_code


def tornTails(digest: str) -> dict[str, bytes]:
    """
    What a crash in the middle of appending a tag of C{digest} can leave after the
    last intact frame, by kind.
    """
    torn = frame(encodeTransaction([TagManifest("torn/repo", "torn", digest)]))
    badChecksum = bytearray(torn)
    badChecksum[-5] ^= 0x20
    return {
        "partial header": torn[:6],
        "partial payload": torn[: len(torn) - 9],
        "bad checksum": bytes(badChecksum),
        "zero filled": b"\0" * 4096,
        "garbage": b"\x17[\x00\xff{" * 300,
    }


@pytest.mark.parametrize("kind", sorted(tornTails("sha256:" + "0" * 64)))
def test_tornTailIsCut(daemon: RegistryDaemon, kind: str) -> None:
    """
    A torn tail on the journal (what a crash during an append leaves) is cut off and
    logged at the next start; everything acknowledged before it is served, the torn
    transaction is not, and pushes go on and survive another restart.
    """
    session = requests.Session()
    daemon.start()
    image = pushImage(session, daemon.url, "torn/repo", "v1", [os.urandom(3000)])
    daemon.stop()
    log = currentLog(daemon)
    intact = log.read_bytes()
    log.write_bytes(intact + tornTails(image.digest)[kind])

    daemon.start()
    checkImage(session, daemon.url, image)
    assert manifestStatus(session, daemon, "torn/repo", "torn") == 404
    assert log.read_bytes() == intact
    assert f"journal log {log} had a torn tail" in daemon.log()
    assert f"at offset {len(intact)}" in daemon.log()
    later = pushImage(session, daemon.url, "torn/repo", "v2", [os.urandom(100)])
    daemon.stop()

    daemon.start()
    checkImage(session, daemon.url, image)
    checkImage(session, daemon.url, later)


def test_tornTailAfterKill(daemon: RegistryDaemon) -> None:
    """
    The same after a crash (SIGKILL) rather than a clean stop.
    """
    session = requests.Session()
    daemon.start()
    image = pushImage(session, daemon.url, "killed/repo", "v1", [os.urandom(2000)])
    daemon.kill()
    log = currentLog(daemon)
    torn = frame(encodeTransaction([TagManifest("killed/repo", "torn", image.digest)]))
    with log.open("ab") as f:
        f.write(torn[: len(torn) // 2])

    daemon.start()
    checkImage(session, daemon.url, image)
    assert manifestStatus(session, daemon, "killed/repo", "torn") == 404


def test_corruptionInTheMiddle(daemon: RegistryDaemon) -> None:
    """
    A damaged frame with intact ones after it is not a torn tail: the daemon does not
    start (exits non-zero) and its log names the file, the offset and the repair.
    Doing as it says starts it with what was recorded before the damage.
    """
    session = requests.Session()
    daemon.start()
    first = pushImage(session, daemon.url, "mid/repo", "first", [os.urandom(500)])
    second = pushImage(session, daemon.url, "mid/repo", "second", [os.urandom(500)])
    daemon.stop()
    log = currentLog(daemon)
    offsets = frameOffsets(log)
    content = log.read_bytes()
    # The frame of the second image's manifest and tag: the last one.
    damaged = offsets[-1]
    corrupt = bytearray(content)
    corrupt[damaged + FRAME.size + 10] ^= 0x01
    corrupt += frame(encodeTransaction([TagManifest("mid/repo", "later", second.digest)]))
    log.write_bytes(bytes(corrupt))

    with pytest.raises(RuntimeError):
        daemon.start()
    assert daemon.process is not None and daemon.process.returncode != 0
    message = daemon.log()
    assert f"journal file {log} is corrupt at byte offset {damaged}" in message
    assert f"truncate -s {damaged} {log}" in message
    assert log.read_bytes() == bytes(corrupt)  # Nothing was changed.

    os.truncate(log, damaged)
    daemon.start()
    checkImage(session, daemon.url, first)
    assert manifestStatus(session, daemon, "mid/repo", "second") == 404
    for digest, data in second.blobs.items():
        blob = session.get(f"{daemon.url}/v2/mid/repo/blobs/{digest}")
        assert (blob.status_code, blob.content) == (200, data)


def test_compactionWhileServing(daemon: RegistryDaemon) -> None:
    """
    With a tiny compaction threshold, pushes compact the journal into snapshots again
    and again; after a crash (SIGKILL) every acknowledged tag is there.
    """
    daemon.extraArgs = ["--journal-compact-after", "2048"]
    session = requests.Session()
    daemon.start()
    image = pushImage(session, daemon.url, "compact/repo", "t0", [os.urandom(1000)])
    tags = [f"t{n}" for n in range(60)]
    for tag in tags[1:]:
        response = session.put(
            f"{daemon.url}/v2/compact/repo/manifests/{tag}",
            data=image.manifest,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert response.status_code == 201, response.text
    names = os.listdir(daemon.dataPath / "journal")
    assert [n for n in names if n.startswith("snapshot.")], names
    assert "journal compacted" in daemon.log()
    daemon.kill()

    daemon.start()
    listed = session.get(f"{daemon.url}/v2/compact/repo/tags/list").json()
    assert sorted(listed["tags"]) == sorted(tags)
    checkImage(session, daemon.url, image)
    assert "Traceback" not in daemon.log()


def test_manyTagsDataDirectory(daemon: RegistryDaemon) -> None:
    """
    A data directory made by L{writeManyTags} serves its image under every tag.
    """
    writeManyTags(daemon.dataPath, "bench/many", 1000)
    config, layer, manifest = smallImage()
    daemon.start()
    session = requests.Session()
    listed = session.get(f"{daemon.url}/v2/bench/many/tags/list").json()
    assert sorted(listed["tags"]) == sorted(f"t{n}" for n in range(1000))
    image = PushedImage(
        "bench/many", "t999", manifest, {digestOf(b): b for b in (config, layer)}
    )
    checkImage(session, daemon.url, image)


def test_stopDuringCompaction(daemon: RegistryDaemon) -> None:
    """
    A data directory whose log is over the threshold is compacted at startup; stopping
    the daemon right then (the compaction given up or done) loses nothing.
    """
    writeManyTags(daemon.dataPath, "stop/repo", 20_000)
    log = currentLog(daemon)
    config, layer, manifest = smallImage()
    with log.open("ab") as f:
        for n in range(3000):
            f.write(frame(encodeTransaction([TagManifest("stop/repo", f"x{n}", digestOf(manifest))])))
    daemon.extraArgs = ["--journal-compact-after", "4096"]
    daemon.start()
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.process.wait(30) in (0, -signal.SIGTERM)
    daemon.process = None
    daemon.start()
    session = requests.Session()
    listed = session.get(f"{daemon.url}/v2/stop/repo/tags/list").json()
    assert len(listed["tags"]) == 23_000
