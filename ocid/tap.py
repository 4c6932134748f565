"""
The C{twistd ocid} command: options and service maker.
"""

from __future__ import annotations

from twisted.application.service import IService
from twisted.python import usage

from ocid.journal import DEFAULT_COMPACT_AFTER
from ocid.service import (
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_UPLOAD_EXPIRY,
    registryService,
)


class Options(usage.Options):
    """
    Options of C{twistd ocid}.
    """

    synopsis = "[--port ENDPOINT]... [--data DIRECTORY]"
    longdesc = (
        "Run an OCI Distribution registry (plain HTTP, no authentication) serving the "
        "data directory on each --port endpoint."
    )
    optFlags = [
        ["no-access-log", None, "Do not log a line for each request."],
    ]
    optParameters = [
        ["data", "d", "/srv/ocid", "The data directory (blobs, journal, uploads)."],
        [
            "upload-expiry",
            None,
            DEFAULT_UPLOAD_EXPIRY,
            "Seconds after which an untouched upload session is removed.",
            float,
        ],
        [
            "idle-timeout",
            None,
            DEFAULT_IDLE_TIMEOUT,
            "Seconds after which an idle HTTP connection is closed.",
            float,
        ],
        [
            "header-timeout",
            None,
            DEFAULT_HEADER_TIMEOUT,
            "Seconds a client has to send a request's line and headers, from their "
            "first byte.",
            float,
        ],
        [
            "max-connections",
            None,
            None,
            "Open connections beyond which the longest-idle one is closed to make room "
            "(default: as many as the file descriptor limit allows).",
            int,
        ],
        [
            "journal-compact-after",
            None,
            DEFAULT_COMPACT_AFTER,
            "Compact the journal into a snapshot once its logs hold this many bytes.",
            int,
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["port"] = []

    def opt_port(self, description: str) -> None:
        """
        A Twisted endpoint description to listen on (default tcp:5000); may be given
        more than once.
        """
        self["port"].append(description)

    opt_p = opt_port

    def postOptions(self) -> None:
        if not self["port"]:
            self["port"] = ["tcp:5000"]
        for name in ("upload-expiry", "idle-timeout", "header-timeout"):
            if not self[name] > 0:
                raise usage.UsageError(f"--{name} must be a positive number of seconds")
        if self["max-connections"] is not None and self["max-connections"] < 1:
            raise usage.UsageError("--max-connections must be at least 1")
        if self["journal-compact-after"] < 1:
            raise usage.UsageError("--journal-compact-after must be at least 1")


def makeService(options: Options) -> IService:
    """
    The registry service the options describe.
    """
    return registryService(
        options["data"],
        options["port"],
        uploadExpiry=options["upload-expiry"],
        idleTimeout=options["idle-timeout"],
        headerTimeout=options["header-timeout"],
        maxConnections=options["max-connections"],
        journalCompactAfter=options["journal-compact-after"],
        accessLog=not options["no-access-log"],
    )
