"""
The ways users run ocid: the twistd plugin, C{ocid.tac}, and embedding the service or the
resource in another Twisted program.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
import urllib.request
from pathlib import Path

from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.resource import Resource
from twisted.web.server import Site

from ocid import registryResource, registryService
from ocid.registry import Registry
from tests.daemon import RegistryDaemon, freeLoopbackPort, portRefuses, twistdPath

ROOT = Path(__file__).resolve().parent.parent


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


def test_pluginListsOptions() -> None:
    """
    C{twistd ocid --help} finds the plugin and documents C{--port} and C{--data}.
    """
    result = subprocess.run(
        [twistdPath(), "ocid", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    for option in ("--port", "--data", "--upload-expiry", "--idle-timeout"):
        assert option in result.stdout


def test_severalPorts(tmp_path: Path) -> None:
    """
    C{--port} may be given more than once; the registry answers on each port, and a
    clean stop closes them all.
    """
    second = freeLoopbackPort()
    daemon = RegistryDaemon(
        tmp_path / "data",
        tmp_path / "log",
        extraArgs=["--port", f"tcp:{second}:interface=127.0.0.1"],
    )
    daemon.start()
    try:
        for port in (daemon.port, second):
            status, body = _get(f"http://127.0.0.1:{port}/v2/")
            assert (status, body) == (200, b"{}")
    finally:
        # twistd ends by re-raising the signal that stopped it, so init systems see it.
        assert daemon.stop() in (0, -15)
    assert portRefuses(daemon.port)
    assert portRefuses(second)


def test_tacFromEnvironment(tmp_path: Path) -> None:
    """
    C{twistd -ny ocid.tac} takes its data directory and port from C{OCID_DATA} and
    C{OCID_PORT}.
    """
    port = freeLoopbackPort()
    data = tmp_path / "tac-data"
    env = dict(os.environ, OCID_DATA=str(data), OCID_PORT=f"tcp:{port}:interface=127.0.0.1")
    process = subprocess.Popen(
        [twistdPath(), "--nodaemon", "--pidfile=", "-y", str(ROOT / "ocid.tac")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, _ = _get(f"http://127.0.0.1:{port}/v2/")
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)
        assert status == 200
        assert (data / "journal" / "log.0").exists()
    finally:
        process.terminate()
        process.wait(30)


def _serve(resource: Resource) -> tuple[str, object]:
    port = reactor.listenTCP(0, Site(resource), interface="127.0.0.1")
    return f"http://127.0.0.1:{port.getHost().port}", port


class EmbeddingTests(TestCase):
    """
    Another Twisted program runs the registry in its own reactor.
    """

    def setUp(self) -> None:
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(pool.closeCachedConnections)
        self.http = HTTPClient(Agent(reactor, pool=pool))

    async def _pushAndPull(self, base: str, repository: str, blob: bytes) -> None:
        digest = _digest(blob)
        response = await self.http.post(
            f"{base}/v2/{repository}/blobs/uploads/?digest={digest}",
            data=blob,
            headers={b"Content-Type": [b"application/octet-stream"]},
        )
        self.assertEqual(response.code, 201, await response.text())
        self.assertEqual(
            response.headers.getRawHeaders(b"docker-content-digest"), [digest.encode()]
        )
        response = await self.http.get(f"{base}/v2/{repository}/blobs/{digest}")
        self.assertEqual(response.code, 200)
        self.assertEqual(await response.content(), blob)

    def test_registryService(self) -> Deferred[None]:
        """
        L{registryService} returns an C{IService}: started, it serves the API on its
        endpoint and stores in its data directory; stopped, its port is closed.
        """
        return Deferred.fromCoroutine(self._test_registryService())

    async def _test_registryService(self) -> None:
        data = Path(self.mktemp())
        port = freeLoopbackPort()
        service = registryService(data, [f"tcp:{port}:interface=127.0.0.1"], reactor)
        # As an embedding program does (twistd also calls privilegedStartService first).
        service.startService()
        try:
            await self._pushAndPull(f"http://127.0.0.1:{port}", "embedded/app", b"x" * 5000)
        finally:
            await service.stopService()
        self.assertTrue(portRefuses(port))
        blobs = list((data / "blobs").rglob("*"))
        self.assertIn(
            hashlib.sha256(b"x" * 5000).hexdigest(), [p.name for p in blobs]
        )

    def test_resourceAsV2Child(self) -> Deferred[None]:
        """
        L{registryResource} serves the API as the C{v2} child of another program's root
        resource, beside that program's own resources.
        """
        return Deferred.fromCoroutine(self._test_resourceAsV2Child())

    async def _test_resourceAsV2Child(self) -> None:
        registry = Registry(Path(self.mktemp()), reactor)
        registry.open()
        self.addCleanup(registry.close)
        root = Resource()
        root.putChild(b"v2", registryResource(registry))
        other = Resource()
        other.render_GET = lambda request: b"mine"  # type: ignore[method-assign]
        other.isLeaf = True
        root.putChild(b"other", other)
        base, port = _serve(root)
        self.addCleanup(port.stopListening)
        response = await self.http.get(f"{base}/v2/")
        self.assertEqual(response.code, 200)
        self.assertEqual(
            response.headers.getRawHeaders(b"docker-distribution-api-version"),
            [b"registry/2.0"],
        )
        await self._pushAndPull(base, "mounted/app", os.urandom(300_000))
        response = await self.http.get(f"{base}/other")
        self.assertEqual(await response.content(), b"mine")

    def test_resourceAsRoot(self) -> Deferred[None]:
        """
        L{registryResource} also serves as a site's root resource.
        """
        return Deferred.fromCoroutine(self._test_resourceAsRoot())

    async def _test_resourceAsRoot(self) -> None:
        registry = Registry(Path(self.mktemp()), reactor)
        registry.open()
        self.addCleanup(registry.close)
        base, port = _serve(registryResource(registry))
        self.addCleanup(port.stopListening)
        await self._pushAndPull(base, "root/app", b"tiny")


def test_endpointServiceUsesInjectedReactor() -> None:
    """
    The endpoint services are built on the reactor passed in, not the global one.
    """
    from twisted.internet.testing import MemoryReactorClock

    memory = MemoryReactorClock()
    service = registryService("/nonexistent", ["tcp:5999"], memory)
    endpoints = [getattr(s, "endpoint", None) for s in service]  # type: ignore[attr-defined]
    tcp = [e for e in endpoints if isinstance(e, TCP4ServerEndpoint)]
    assert len(tcp) == 1
    assert tcp[0]._reactor is memory


def test_accessLog(tmp_path: Path) -> None:
    """
    Each request is logged by default; C{--no-access-log} turns that off.
    """
    for extra, expected in (([], True), (["--no-access-log"], False)):
        daemon = RegistryDaemon(tmp_path / "data", tmp_path / f"log{len(extra)}", extra)
        daemon.start()
        try:
            _get(f"{daemon.url}/v2/_catalog")
        finally:
            daemon.stop()
        assert ('"GET /v2/_catalog HTTP/1.1" 200' in daemon.log()) is expected
