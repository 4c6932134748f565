"""
Limits on what a client may hold: request line and header sizes, the time to send a
request head, idle connections, and the number of open connections.  A client dripping a
request head, or hundreds of idle connections, or more idle connections than the process
has file descriptors for, must not stop others from being served.

The timing logic is unit tested with L{twisted.internet.task.Clock} and
L{twisted.internet.testing.StringTransport}; a real daemon, limited to 1024 file
descriptors, checks the same end to end.  Run with C{pytest -s} for the daemon's RSS.
"""

from __future__ import annotations

import select
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.static import Data

from ocid.http.channel import RegistryChannel
from ocid.http.request import RegistrySite
from ocid.storage.uploads import UploadStore
from tests.daemon import RegistryDaemon
from tests.rawhttp import HOST, parseResponse, request
from tests.registryclient import checkImage, pushImage, residentBytes

MiB = 1024 * 1024
GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


class ChannelTests(SynchronousTestCase):
    """
    L{RegistryChannel} over a memory transport, with a fake clock: header deadline 10 s,
    idle timeout 60 s.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        uploads = UploadStore(Path(self.mktemp()), self.clock)
        uploads.load()
        root = Data(b"ok", "text/plain")
        root.isLeaf = True
        self.site = RegistrySite(
            root, uploads, self.clock, headerTimeout=10, timeout=60, maxConnections=3
        )

    def connect(self) -> tuple[RegistryChannel, StringTransport]:
        address = IPv4Address("TCP", "127.0.0.1", 40000)
        channel = self.site.buildProtocol(address)
        transport = StringTransport(peerAddress=address)
        channel.makeConnection(transport)
        return channel, transport

    def drip(
        self,
        channel: RegistryChannel,
        transport: StringTransport,
        data: bytes,
        seconds: float,
    ) -> None:
        """
        Deliver C{data} a byte every C{seconds}, until the server closes the connection.
        """
        for byte in data:
            if transport.disconnecting:
                return
            channel.dataReceived(bytes([byte]))
            self.clock.advance(seconds)

    def test_drippedHeadIsCutOff(self) -> None:
        """
        A head dripped one byte a second (each byte would restart the idle timeout) is
        answered 408 with the spec's error body and closed once 10 s have passed since
        its first byte.
        """
        channel, transport = self.connect()
        self.drip(channel, transport, b"GET / HTTP/1.1\r\nHost: x\r\nX-Drip: ", 1)
        self.assertTrue(transport.disconnecting)
        response = parseResponse(transport.value())
        self.assertEqual(response.status, 408)
        self.assertEqual(response.errorCodes(), ["UNSUPPORTED"])

    def test_withoutDeadlineDripWouldHold(self) -> None:
        """
        The same drip with no header deadline keeps the connection: the idle timeout
        alone does not stop it (why the deadline exists).
        """
        self.site.headerTimeout = None
        channel, transport = self.connect()
        self.drip(channel, transport, b"GET / HTTP/1.1\r\nHost: x\r\nX-Drip: " + b"a" * 100, 1)
        self.assertFalse(transport.disconnecting)
        self.assertEqual(transport.value(), b"")

    def test_slowBodyIsNotCutOff(self) -> None:
        """
        The deadline covers the head only: a body dripped over 30 s after a prompt head is
        received and answered.
        """
        channel, transport = self.connect()
        channel.dataReceived(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 30\r\n\r\n")
        self.drip(channel, transport, b"b" * 30, 1)
        self.assertFalse(transport.disconnecting)
        response = parseResponse(transport.value())
        self.assertNotEqual(response.status, 408)
        self.assertNotEqual(response.status, 0)

    def test_idleKeepAliveIsLeftToIdleTimeout(self) -> None:
        """
        A kept-alive connection idle between requests is not a late head: it stays open
        past the header deadline, serves its next request, and closes at the idle timeout.
        """
        channel, transport = self.connect()
        channel.dataReceived(GET)
        self.assertEqual(parseResponse(transport.value()).status, 200)
        transport.clear()
        self.clock.advance(30)
        self.assertFalse(transport.disconnecting)
        channel.dataReceived(GET)
        self.assertEqual(parseResponse(transport.value()).body, b"ok")
        self.clock.advance(61)
        self.assertTrue(transport.disconnecting)

    def test_deadlineIsPerRequest(self) -> None:
        """
        Each request on a connection gets its own deadline: three heads of 6 s each (18 s
        in all) are all served.
        """
        channel, transport = self.connect()
        for _ in range(3):
            transport.clear()
            head = GET[:-4]
            self.drip(channel, transport, head, 6 / len(head))
            channel.dataReceived(b"\r\n\r\n")
            self.assertEqual(parseResponse(transport.value()).status, 200)
        self.assertFalse(transport.disconnecting)

    def test_notHTTPIsRefusedAtOnce(self) -> None:
        """
        Bytes that cannot begin an HTTP request, such as the TLS ClientHello of a client
        trying HTTPS first, are answered 400 with the spec's error body at once, not
        after the header deadline; an empty line before a request line is fine.
        """
        channel, transport = self.connect()
        channel.dataReceived(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        response = parseResponse(transport.value())
        self.assertEqual((response.status, response.errorCodes()), (400, ["UNSUPPORTED"]))
        self.assertTrue(transport.disconnecting)

        channel, transport = self.connect()
        channel.dataReceived(b"\r\n" + GET)
        self.assertEqual(parseResponse(transport.value()).status, 200)

    def test_oversizedHeadsAreRefused(self) -> None:
        """
        A request line over 8 KiB is answered 414, a header line over 8 KiB, a head over
        16 KiB or over 100 headers 431, each with the spec's error body.
        """
        for head, status in [
            (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414),
            (b"GET / HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n", 431),
            (b"GET / HTTP/1.1\r\n" + (b"X: " + b"a" * 1000 + b"\r\n") * 17 + b"\r\n", 431),
            (b"GET / HTTP/1.1\r\n" + b"X: a\r\n" * 101 + b"\r\n", 431),
        ]:
            channel, transport = self.connect()
            channel.dataReceived(head)
            response = parseResponse(transport.value())
            self.assertEqual((response.status, response.errorCodes()),
                             (status, ["UNSUPPORTED"]))
            self.assertTrue(transport.disconnecting)

    def test_longestIdleIsClosedToMakeRoom(self) -> None:
        """
        With a limit of 3 connections, a fourth closes the one that has waited longest for
        a request; a connection busy with a request is never closed to make room.
        """
        busy, busyTransport = self.connect()
        busy.dataReceived(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
        idle1, idle1Transport = self.connect()
        idle2, idle2Transport = self.connect()
        idle2.dataReceived(GET)
        self.connect()
        self.assertTrue(idle1Transport.disconnecting)
        self.assertFalse(idle2Transport.disconnecting)
        self.assertFalse(busyTransport.disconnecting)
        self.connect()
        self.assertTrue(idle2Transport.disconnecting)
        self.assertFalse(busyTransport.disconnecting)


class LimitedDaemon(RegistryDaemon):
    """
    A daemon limited to 1024 open file descriptors, as many systems start services.
    """

    def command(self) -> list[str]:
        if shutil.which("prlimit") is None:
            pytest.skip("prlimit (util-linux) is needed to limit the daemon's descriptors")
        return ["prlimit", "--nofile=1024:1024", "--", *super().command()]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryDaemon]:
    base = tmp_path_factory.mktemp("limits")
    registry = LimitedDaemon(base / "data", base / "ocid.log",
                             ["--header-timeout", "2", "--idle-timeout", "300"])
    registry.start()
    yield registry
    registry.stop()


def connectMany(port: int, count: int, send: bytes = b"") -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        s = socket.create_connection((HOST, port), timeout=30)
        if send:
            s.sendall(send)
        sockets.append(s)
    return sockets


def closedByServer(sockets: list[socket.socket], within: float = 60.0) -> dict[int, bytes]:
    """
    Wait until the server has closed each of C{sockets} (or C{within} seconds pass);
    return what each closed one received, by index.
    """
    received: dict[int, bytes] = {}
    pending = dict(enumerate(sockets))
    data: dict[int, bytes] = {i: b"" for i in pending}
    deadline = time.monotonic() + within
    while pending and time.monotonic() < deadline:
        readable, _, _ = select.select(list(pending.values()), [], [], 0.5)
        for s in readable:
            index = next(i for i, t in pending.items() if t is s)
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if chunk:
                data[index] += chunk
            else:
                received[index] = data[index]
                del pending[index]
    return received


def servesNormally(daemon: RegistryDaemon, name: str) -> None:
    """
    A whole push and pull by a well-behaved client works.
    """
    with requests.Session() as http:
        assert http.get(daemon.url + "/v2/", timeout=30).status_code == 200
        image = pushImage(http, daemon.url, name, "v1", [b"layer of " + name.encode()])
        checkImage(http, daemon.url, image)


def test_idleConnectionsDoNotStopOthers(daemon: RegistryDaemon) -> None:
    """
    With 300 idle connections and 100 more that sent half a request line, a client still
    pushes and pulls; the half-sent heads are answered 408 and closed at the header
    deadline; RSS stays bounded.
    """
    assert daemon.process is not None
    pid = daemon.process.pid
    before = residentBytes(pid)
    idle = connectMany(daemon.port, 300)
    partial = connectMany(daemon.port, 100, b"GET /v2/ HT")
    try:
        servesNormally(daemon, "limits/idle")
        during = residentBytes(pid)
        closed = closedByServer(partial)
        assert len(closed) == len(partial)
        for data in closed.values():
            response = parseResponse(data)
            assert response.status == 408
            assert response.errorCodes() == ["UNSUPPORTED"]
        servesNormally(daemon, "limits/idle2")
    finally:
        for s in idle + partial:
            s.close()
    assert request(daemon.port, b"GET", b"/v2/").status == 200
    after = residentBytes(pid)
    print(f"\nRSS with 400 idle connections: {before / MiB:.1f} MiB before, "
          f"{during / MiB:.1f} MiB with them open, {after / MiB:.1f} MiB after")
    assert during - before < 64 * MiB
    assert after - before < 64 * MiB


def test_drippingClientsAreCutOff(daemon: RegistryDaemon) -> None:
    """
    Thirty clients dripping a request head one byte every 0.2 s (each byte restarts the
    idle timeout) are answered 408 and closed long before their 200-byte heads could
    complete, while a normal client is served throughout.
    """
    head = b"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Drip: " + b"d" * 200
    drippers = connectMany(daemon.port, 30)
    sent = [0] * len(drippers)
    answers: dict[int, bytes] = {}
    served = 0
    try:
        for step in range(len(head)):
            for i, s in enumerate(drippers):
                if i in answers:
                    continue
                readable, _, _ = select.select([s], [], [], 0)
                if readable:
                    answers[i] = s.recv(65536)
                    continue
                try:
                    s.sendall(head[step : step + 1])
                    sent[i] += 1
                except (BrokenPipeError, ConnectionResetError):
                    answers[i] = b""
            if len(answers) == len(drippers):
                break
            if step % 5 == 0:
                assert request(daemon.port, b"GET", b"/v2/").status == 200
                served += 1
            time.sleep(0.2)
        answers.update(closedByServer([drippers[i] for i in range(len(drippers))
                                       if i not in answers], within=5))
    finally:
        for s in drippers:
            s.close()
    assert served > 0
    assert max(sent) < len(head), "a dripping client was never cut off"
    statuses = [parseResponse(answers[i]).status if answers.get(i) else 0
                for i in range(len(drippers))]
    assert statuses == [408] * len(drippers)


def test_moreIdleConnectionsThanDescriptors(daemon: RegistryDaemon) -> None:
    """
    1100 idle connections, more than the daemon's 1024 file descriptors: the longest
    idle are closed to make room, and a normal client is still served at once (not after
    the idle timeout of 300 s).
    """
    assert daemon.process is not None
    before = residentBytes(daemon.process.pid)
    idle = connectMany(daemon.port, 1100)
    try:
        servesNormally(daemon, "limits/crowd")
        closed = closedByServer(idle[:100], within=30)
        assert len(closed) == 100
    finally:
        for s in idle:
            s.close()
    after = residentBytes(daemon.process.pid)
    print(f"\nRSS around 1100 idle connections: {before / MiB:.1f} MiB before, "
          f"{after / MiB:.1f} MiB after")
    assert "to make room" in daemon.log()
    assert after - before < 64 * MiB
    assert "Traceback" not in daemon.log()
