"""
Abandoned uploads ("Pushing a blob in chunks"): a session nobody touches for the upload
expiry is removed with its files, by a timer, also across restarts; a client that goes
away mid-C{PATCH} leaves a session that resumes where the bytes stopped (its status shows
them), and no memory behind.

The expiry logic is driven by L{twisted.internet.task.Clock}; real daemons check the
timer, the restart and the disconnects end to end.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from twisted.application.internet import TimerService
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from ocid.errors import RegistryError
from ocid.http.uploadbody import UploadSink, uploadSinkFor
from ocid.registry import Registry
from ocid.service import RegistryService
from ocid.storage.uploads import UploadStore
from tests.daemon import RegistryDaemon
from tests.rawhttp import HOST
from tests.registryclient import digestOf, residentBytes

MiB = 1024 * 1024


def patchSink(
    store: UploadStore, repository: str, sessionID: str, clock: Clock, length: int
) -> UploadSink:
    """
    The upload sink of a C{PATCH} of C{length} bytes to a session, as the HTTP layer
    makes it once the request's headers are in.
    """
    sink = uploadSinkFor(
        store,
        b"PATCH",
        f"/v2/{repository}/blobs/uploads/{sessionID}".encode(),
        {},
        length,
        clock.seconds(),
    )
    assert sink is not None and sink.error is None
    return sink


class ExpiryTests(SynchronousTestCase):
    """
    L{UploadStore.expire} with a fake clock.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.root = Path(self.mktemp())
        self.store = UploadStore(self.root, self.clock)
        self.store.load()

    def test_untouchedSessionExpires(self) -> None:
        """
        A session untouched for longer than the expiry is removed with its directory and
        becomes unknown; until then it stays.
        """
        session = self.store.create("repo")
        self.clock.advance(100)
        self.assertEqual(self.store.expire(100), 0)
        self.assertTrue(session.dataPath.exists())
        self.clock.advance(1)
        self.assertEqual(self.store.expire(100), 1)
        self.assertFalse(session.directory.exists())
        self.assertEqual(list(self.root.iterdir()), [])
        self.assertRaises(RegistryError, self.store.get, "repo", session.id)

    def test_receivingBytesPostponesExpiry(self) -> None:
        """
        Every chunk received renews the session's lease: it expires an expiry period after
        its last chunk, not after its creation.
        """
        session = self.store.create("repo")
        self.clock.advance(90)
        sink = patchSink(self.store, "repo", session.id, self.clock, 4)
        sink.write(b"abcd")
        self.assertIs(sink.finish(), session)
        self.clock.advance(90)
        self.assertEqual(self.store.expire(100), 0)
        self.clock.advance(11)
        self.assertEqual(self.store.expire(100), 1)

    def test_sessionBeingWrittenDoesNotExpire(self) -> None:
        """
        A session receiving a body is not expired under the request's feet, however long
        the body takes; it expires an expiry period after the body ends.
        """
        session = self.store.create("repo")
        sink = patchSink(self.store, "repo", session.id, self.clock, 8)
        sink.write(b"abcd")
        self.clock.advance(500)
        self.assertEqual(self.store.expire(100), 0)
        sink.write(b"efgh")
        sink.finish()
        self.assertEqual(session.dataPath.read_bytes(), b"abcdefgh")
        self.clock.advance(100)
        self.assertEqual(self.store.expire(100), 0)
        self.clock.advance(1)
        self.assertEqual(self.store.expire(100), 1)

    def test_restartKeepsSessionAge(self) -> None:
        """
        Sessions found on disk at startup keep the age their data file's modification
        time gives them, so a restart does not renew abandoned sessions.
        """
        wallNow = 1_000_000_000.0
        old = self.store.create("repo")
        fresh = self.store.create("repo")
        fresh.dataPath.write_bytes(b"fresh bytes")
        os.utime(old.dataPath, (wallNow - 150, wallNow - 150))
        os.utime(fresh.dataPath, (wallNow - 50, wallNow - 50))

        restarted = UploadStore(self.root, Clock(), wallClock=lambda: wallNow)
        restarted.load()
        self.assertEqual(len(restarted), 2)
        self.assertEqual(restarted.expire(100), 1)
        self.assertFalse(old.directory.exists())
        kept = restarted.get("repo", fresh.id)
        self.assertEqual(kept.size, len(b"fresh bytes"))
        self.assertEqual([p.name for p in self.root.iterdir()], [fresh.id])

    def test_loadRemovesWhatIsNotASession(self) -> None:
        """
        Entries of the upload directory that are not sessions (a stray file, a directory
        that is not named by a session id, a session without its info) are removed at
        startup instead of lying there for ever.
        """
        (self.root / "stray").write_bytes(b"x")
        (self.root / "not-a-session").mkdir()
        (self.root / "00000000-0000-0000-0000-000000000000").mkdir()
        kept = self.store.create("repo")
        restarted = UploadStore(self.root, Clock())
        restarted.load()
        self.assertEqual([p.name for p in self.root.iterdir()], [kept.id])
        self.assertEqual(len(restarted), 1)

    def test_timerExpiresWithoutAnyRequest(self) -> None:
        """
        The registry service's timer expires sessions on its own, at least every quarter
        of the expiry period, starting when the service starts.
        """
        registry = Registry(Path(self.mktemp()), self.clock)
        registry.uploads.load()
        service = RegistryService(registry, [], self.clock, uploadExpiry=100)
        (timer,) = [s for s in service if isinstance(s, TimerService)]
        session = registry.uploads.create("repo")
        timer.startService()
        self.addCleanup(timer.stopService)
        self.clock.advance(75)
        self.assertTrue(session.directory.exists())
        for _ in range(3):
            self.clock.advance(25)
        self.assertFalse(session.directory.exists())
        self.assertEqual(len(registry.uploads), 0)


def waitFor(condition: Callable[[], bool], within: float = 60.0) -> bool:
    """
    Poll C{condition} until it holds (C{True}) or C{within} seconds pass (C{False}).
    """
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def startSession(http: requests.Session, url: str, name: str) -> str:
    response = http.post(f"{url}/v2/{name}/blobs/uploads/")
    assert response.status_code == 202, response.text
    return response.headers["Location"]


def uploadStatus(http: requests.Session, url: str, location: str) -> requests.Response:
    return http.get(url + location)


def test_abandonedSessionExpiresOnItsOwn(tmp_path: Path) -> None:
    """
    With C{--upload-expiry 2}, a session that received a chunk and was then abandoned
    becomes unknown (404 C{BLOB_UPLOAD_UNKNOWN}) and its files leave the disk, without any
    further request touching it.
    """
    daemon = RegistryDaemon(tmp_path / "data", tmp_path / "ocid.log",
                            ["--upload-expiry", "2"])
    daemon.start()
    try:
        with requests.Session() as http:
            location = startSession(http, daemon.url, "expiry/abandoned")
            patched = http.patch(daemon.url + location, data=b"x" * 1000,
                                 headers={"Content-Range": "0-999"})
            assert patched.status_code == 202
            uploads = tmp_path / "data" / "uploads"
            assert len(list(uploads.iterdir())) == 1
            assert waitFor(lambda: uploadStatus(http, daemon.url, location).status_code == 404)
            gone = uploadStatus(http, daemon.url, location)
            assert gone.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"
            assert waitFor(lambda: list(uploads.iterdir()) == [])
    finally:
        daemon.stop()
    assert "expiring upload session" in daemon.log()


def test_restartDoesNotRenewAbandonedSessions(tmp_path: Path) -> None:
    """
    A session abandoned two days ago is removed when the daemon starts again (default
    expiry: 24 hours), while a session active a minute ago survives the restart and
    resumes where it stopped.
    """
    daemon = RegistryDaemon(tmp_path / "data", tmp_path / "ocid.log")
    daemon.start()
    with requests.Session() as http:
        old = startSession(http, daemon.url, "expiry/restart")
        fresh = startSession(http, daemon.url, "expiry/restart")
        for location in (old, fresh):
            assert http.patch(daemon.url + location, data=b"0123456789").status_code == 202
    daemon.stop()
    uploads = tmp_path / "data" / "uploads"
    oldData = uploads / old.rsplit("/", 1)[1] / "data"
    freshData = uploads / fresh.rsplit("/", 1)[1] / "data"
    twoDaysAgo = time.time() - 2 * 24 * 3600
    os.utime(oldData, (twoDaysAgo, twoDaysAgo))
    os.utime(freshData, (time.time() - 60, time.time() - 60))

    daemon.start()
    try:
        with requests.Session() as http:
            assert waitFor(lambda: uploadStatus(http, daemon.url, old).status_code == 404)
            assert not oldData.parent.exists()
            status = uploadStatus(http, daemon.url, fresh)
            assert status.status_code == 204
            assert status.headers["Range"] == "0-9"
            more = http.patch(daemon.url + fresh, data=b"abcdef",
                              headers={"Content-Range": "10-15"})
            assert more.status_code == 202, more.text
            blob = b"0123456789abcdef"
            done = http.put(f"{daemon.url}{fresh}?digest={digestOf(blob)}")
            assert done.status_code == 201, done.text
            pulled = http.get(f"{daemon.url}/v2/expiry/restart/blobs/{digestOf(blob)}")
            assert pulled.content == blob
    finally:
        daemon.stop()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryDaemon]:
    base = tmp_path_factory.mktemp("disconnect")
    registry = RegistryDaemon(base / "data", base / "ocid.log")
    registry.start()
    yield registry
    registry.stop()


def sendThenVanish(port: int, head: bytes, body: bytes) -> None:
    """
    Send a request head and part of its body, then close the connection mid-body.
    """
    with socket.create_connection((HOST, port), timeout=30) as s:
        s.sendall(head + body)


def patchHead(location: str, length: int, first: int | None = None) -> bytes:
    lines = [f"PATCH {location} HTTP/1.1", f"Host: {HOST}",
             "Content-Type: application/octet-stream", f"Content-Length: {length}"]
    if first is not None:
        lines.append(f"Content-Range: {first}-{first + length - 1}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_disconnectMidPatchLeavesResumableSession(daemon: RegistryDaemon) -> None:
    """
    A client that vanishes after 3 MiB of an 8 MiB chunk leaves a session whose status
    ("Range: 0-<last byte>") shows exactly the bytes that arrived; a C{PATCH} from there
    and the closing C{PUT} complete a blob that pulls back byte for byte.  Twenty such
    disconnects leave no memory behind.
    """
    blob = os.urandom(8 * MiB)
    cut = 3 * MiB + 123
    rss = [residentBytes(daemon.process.pid)]
    with requests.Session() as http:
        for round in range(20):
            name = f"disconnect/round{round}"
            location = startSession(http, daemon.url, name)
            sendThenVanish(daemon.port, patchHead(location, len(blob), 0), blob[:cut])
            assert waitFor(
                lambda loc=location: uploadStatus(http, daemon.url, loc).headers.get("Range")
                == f"0-{cut - 1}"
            ), uploadStatus(http, daemon.url, location).headers
            if round % 5:
                # Most clients never come back: cancel, as "Canceling an upload" says.
                assert http.delete(daemon.url + location).status_code == 204
                continue
            rest = http.patch(
                daemon.url + location,
                data=blob[cut:],
                headers={"Content-Range": f"{cut}-{len(blob) - 1}",
                         "Content-Type": "application/octet-stream"},
            )
            assert rest.status_code == 202, rest.text
            assert rest.headers["Range"] == f"0-{len(blob) - 1}"
            done = http.put(f"{daemon.url}{location}?digest={digestOf(blob)}")
            assert done.status_code == 201, done.text
            pulled = http.get(f"{daemon.url}/v2/{name}/blobs/{digestOf(blob)}")
            assert pulled.status_code == 200
            assert pulled.content == blob
    rss.append(residentBytes(daemon.process.pid))
    print(f"\nRSS around 20 mid-PATCH disconnects of 3 MiB: "
          f"{rss[0] / MiB:.1f} MiB before, {rss[1] / MiB:.1f} MiB after")
    assert rss[1] - rss[0] < 64 * MiB
    assert list((daemon.dataPath / "uploads").iterdir()) == []


def test_disconnectMidMonolithicPostLeavesNothing(daemon: RegistryDaemon) -> None:
    """
    A single-POST upload ("Pushing a blob monolithically", POST with C{digest}) whose
    client vanishes mid-body stores nothing: no blob, no session left on disk.
    """
    blob = os.urandom(2 * MiB)
    name = "disconnect/monolithic"
    head = (
        f"POST /v2/{name}/blobs/uploads/?digest={digestOf(blob)} HTTP/1.1\r\n"
        f"Host: {HOST}\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {len(blob)}\r\n\r\n"
    ).encode()
    uploads = daemon.dataPath / "uploads"
    for _ in range(10):
        with socket.create_connection((HOST, daemon.port), timeout=30) as s:
            s.sendall(head + blob[:MiB])
            # The session for this request alone exists while its body arrives...
            assert waitFor(lambda: len(list(uploads.iterdir())) == 1)
        # ...and goes when the client does.
        assert waitFor(lambda: list(uploads.iterdir()) == [])
    with requests.Session() as http:
        assert http.head(f"{daemon.url}/v2/{name}/blobs/{digestOf(blob)}").status_code == 404
        # The same upload, sent in full, is stored.
        done = http.post(f"{daemon.url}/v2/{name}/blobs/uploads/?digest={digestOf(blob)}",
                         data=blob, headers={"Content-Type": "application/octet-stream"})
        assert done.status_code == 201, done.text
        assert http.get(f"{daemon.url}/v2/{name}/blobs/{digestOf(blob)}").content == blob
