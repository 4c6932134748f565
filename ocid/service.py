"""
The registry as a Twisted service: what C{twistd ocid}, C{ocid.tac} and embedding programs
all use.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twisted.application.internet import StreamServerEndpointService, TimerService
from twisted.application.service import IService, MultiService
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger
from twisted.web.resource import IResource

from ocid.http.api import RegistryAPI
from ocid.http.request import DEFAULT_HEADER_TIMEOUT, RegistrySite
from ocid.journal import DEFAULT_COMPACT_AFTER
from ocid.registry import Registry

log = Logger()

#: Upload sessions untouched this long are removed.
DEFAULT_UPLOAD_EXPIRY = 24 * 60 * 60.0
#: Idle HTTP connections are closed after this many seconds.
DEFAULT_IDLE_TIMEOUT = 60
#: The upload expiry timer runs four times per expiry period, but at least once in this
#: many seconds, so a session outlives its expiry by a quarter of it at most.
MAX_EXPIRY_INTERVAL = 3600.0


class RegistryService(MultiService):
    """
    A registry serving the data directory C{registry.dataPath} on some endpoints.

    Starting it opens the storage and replays the journal (before any port listens);
    stopping it stops the ports, then waits for pending journal writes.  A timer removes
    upload sessions untouched for C{uploadExpiry} seconds, first when the service starts
    (sessions an earlier run left keep their age).

    @ivar registry: the L{Registry}, for programs that want to look inside.
    @ivar site: the HTTP site serving the API.
    """

    def __init__(
        self,
        registry: Registry,
        listen: Sequence[str],
        reactor: Any,
        uploadExpiry: float = DEFAULT_UPLOAD_EXPIRY,
        idleTimeout: float = DEFAULT_IDLE_TIMEOUT,
        headerTimeout: float = DEFAULT_HEADER_TIMEOUT,
        maxConnections: int | None = None,
        accessLog: bool = True,
    ) -> None:
        super().__init__()
        self.registry = registry
        self.site = RegistrySite(
            RegistryAPI(registry).resource(),
            registry.uploads,
            reactor,
            headerTimeout=headerTimeout,
            maxConnections=maxConnections,
            accessLog=accessLog,
            timeout=idleTimeout,
        )
        self.site.displayTracebacks = False
        self._uploadExpiry = uploadExpiry
        for description in listen:
            endpoint = serverFromString(reactor, description)
            StreamServerEndpointService(endpoint, self.site).setServiceParent(self)
        expiry = TimerService(
            min(uploadExpiry / 4, MAX_EXPIRY_INTERVAL), self._expireUploads
        )
        expiry.clock = reactor
        expiry.setServiceParent(self)

    def _expireUploads(self) -> None:
        try:
            self.registry.uploads.expire(self._uploadExpiry)
        except Exception:
            log.failure("expiring upload sessions failed")

    def privilegedStartService(self) -> None:
        # Open storage first, so that no port accepts a request before the journal is
        # replayed; a corrupt journal stops the start here.
        self._openRegistry()
        super().privilegedStartService()

    def startService(self) -> None:
        # A program embedding the service may call only startService.
        self._openRegistry()
        super().startService()

    def _openRegistry(self) -> None:
        if self.registry.journal is None:
            self.registry.open()

    def stopService(self) -> Deferred[None]:
        d: Deferred[Any] = Deferred.fromCoroutine(self._stop())
        return d

    async def _stop(self) -> None:
        await super().stopService()
        await self.registry.close()


def registryService(
    dataPath: str | Path,
    listen: Sequence[str] = ("tcp:5000",),
    reactor: Any = None,
    uploadExpiry: float = DEFAULT_UPLOAD_EXPIRY,
    idleTimeout: float = DEFAULT_IDLE_TIMEOUT,
    headerTimeout: float = DEFAULT_HEADER_TIMEOUT,
    maxConnections: int | None = None,
    journalCompactAfter: int = DEFAULT_COMPACT_AFTER,
    accessLog: bool = True,
) -> IService:
    """
    Build a registry serving the data directory C{dataPath} on each endpoint description
    in C{listen} (such as C{"tcp:5000"} or C{"tcp:5000:interface=127.0.0.1"}).

    Add the result to your application or C{MultiService}; the storage is opened when the
    service starts.

    @param reactor: the reactor to use; the global one if C{None}.
    @param uploadExpiry: seconds after which an untouched upload session is removed.
    @param idleTimeout: seconds after which an idle HTTP connection is closed.
    @param headerTimeout: seconds a client has to send a request's line and headers.
    @param maxConnections: open connections beyond which the longest-idle one is closed;
        by default as many as the file descriptor limit allows.
    @param journalCompactAfter: compact the journal into a snapshot once its logs hold
        this many bytes.
    @param accessLog: whether to log a line for each request.
    """
    if reactor is None:
        from twisted.internet import reactor as globalReactor

        reactor = globalReactor
    registry = Registry(Path(dataPath), reactor, journalCompactAfter=journalCompactAfter)
    return RegistryService(
        registry,
        listen,
        reactor,
        uploadExpiry,
        idleTimeout,
        headerTimeout,
        maxConnections,
        accessLog,
    )


def registryResource(registry: Registry) -> IResource:
    """
    The HTTP API of C{registry} as a resource, for mounting under an existing site: serve
    it as the site's root resource, or as the root's C{b"v2"} child.  The caller opens
    the registry (L{Registry.open}) before serving.

    Under a site of your own, upload bodies are buffered by Twisted before they reach the
    registry; L{ocid.http.request.RegistrySite} streams them instead.
    """
    return RegistryAPI(registry).resource()
