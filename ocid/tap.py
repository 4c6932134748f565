"""
The C{twistd ocid} command: options and service maker.
"""

from __future__ import annotations

from twisted.application.service import IService
from twisted.python import usage

from ocid.service import DEFAULT_IDLE_TIMEOUT, DEFAULT_UPLOAD_EXPIRY, registryService


class Options(usage.Options):
    """
    Options of C{twistd ocid}.
    """

    synopsis = "[--port ENDPOINT]... [--data DIRECTORY]"
    longdesc = (
        "Run an OCI Distribution registry (plain HTTP, no authentication) serving the "
        "data directory on each --port endpoint."
    )
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


def makeService(options: Options) -> IService:
    """
    The registry service the options describe.
    """
    return registryService(
        options["data"],
        options["port"],
        uploadExpiry=options["upload-expiry"],
        idleTimeout=options["idle-timeout"],
    )
