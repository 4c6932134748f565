"""
Run a real C{twistd -n ocid} process on a free loopback port, for end-to-end tests.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import attrs


def twistdPath() -> str:
    """
    The C{twistd} script of the Python environment running the tests.
    """
    candidate = Path(sys.executable).parent / "twistd"
    if candidate.exists():
        return str(candidate)
    return "twistd"


def freeLoopbackPort() -> int:
    """
    A TCP port on 127.0.0.1 that nothing listens on right now.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def portRefuses(port: int, host: str = "127.0.0.1") -> bool:
    """
    Whether a TCP connection to C{host:port} is refused.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        try:
            s.connect((host, port))
        except ConnectionRefusedError:
            return True
        return False


@attrs.define
class RegistryDaemon:
    """
    One C{twistd -n ocid} process serving C{dataPath} on a loopback port.

    @ivar dataPath: the registry's data directory.
    @ivar logPath: where the daemon's log goes (read it when a test fails).
    @ivar extraArgs: more command-line options for C{ocid}.
    @ivar env: extra environment variables for the daemon.
    """

    dataPath: Path
    logPath: Path
    extraArgs: list[str] = attrs.field(factory=list)
    env: dict[str, str] = attrs.field(factory=dict)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """
        The base URL, without a trailing slash: C{http://127.0.0.1:PORT}.
        """
        return f"http://127.0.0.1:{self.port}"

    @property
    def hostPort(self) -> str:
        """
        C{127.0.0.1:PORT}, as registry clients want it.
        """
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        """
        The command line that runs the daemon (a subclass may run another registry).
        """
        return [
            twistdPath(),
            "--nodaemon",
            "--pidfile=",
            "ocid",
            "--port",
            f"tcp:{self.port}:interface=127.0.0.1",
            "--data",
            str(self.dataPath),
            *self.extraArgs,
        ]

    def start(self, timeout: float = 30.0) -> None:
        """
        Start the daemon (on the same port as before, if it ran before) and wait until
        C{GET /v2/} answers 200.
        """
        if not self.port:
            self.port = freeLoopbackPort()
        self.dataPath.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(self.env)
        logFile = self.logPath.open("ab")
        self.process = subprocess.Popen(
            self.command(),
            stdout=logFile,
            stderr=subprocess.STDOUT,
            env=env,
        )
        logFile.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"ocid exited with {self.process.returncode}:\n{self.log()}"
                )
            try:
                with urllib.request.urlopen(self.url + "/v2/", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"ocid did not answer within {timeout}s:\n{self.log()}")

    def stop(self, timeout: float = 30.0) -> int:
        """
        Stop the daemon cleanly (SIGTERM) and wait for it to exit; return its exit code.
        """
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        self.process = None
        return code

    def kill(self) -> None:
        """
        Kill the daemon with SIGKILL, as a crash would, and reap it.
        """
        if self.process is not None:
            self.process.kill()
            self.process.wait(30)
            self.process = None

    def log(self) -> str:
        """
        Everything the daemon has logged so far.
        """
        try:
            return self.logPath.read_text(errors="replace")
        except FileNotFoundError:
            return ""
