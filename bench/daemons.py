"""
Start and stop the two registries under test: ocid (C{twistd -n ocid}) and the
reference registry (C{docker-registry serve}), each on a free loopback port.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench import procstat

REFERENCE_BINARY = "/usr/bin/docker-registry"


def freeLoopbackPort() -> int:
    """
    A TCP port on 127.0.0.1 that nothing listens on right now.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def twistdPath() -> str:
    """
    The C{twistd} script beside the running Python, else the one on C{PATH}.
    """
    candidate = Path(sys.executable).parent / "twistd"
    if candidate.exists():
        return str(candidate)
    return shutil.which("twistd") or "twistd"


def ocidAvailable() -> bool:
    """
    Whether C{twistd ocid} is a known plugin in this environment.
    """
    try:
        result = subprocess.run(
            [twistdPath(), "ocid", "--help"],
            capture_output=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    text = (result.stdout + result.stderr).decode(errors="replace")
    return result.returncode == 0 and "Unknown command" not in text


def referenceAvailable() -> bool:
    """
    Whether the reference registry binary is installed.
    """
    return os.access(REFERENCE_BINARY, os.X_OK)


def probeV2(port: int) -> int | None:
    """
    The status of one C{GET /v2/} on C{port}, or C{None} if nothing answered.
    """
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            data = s.recv(64)
    except OSError:
        return None
    parts = data.split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return None
    return int(parts[1])


class Daemon:
    """
    One registry process serving C{dataDir} on a loopback port.

    @ivar name: C{"ocid"} or C{"reference"}.
    @ivar overallPeak: the largest C{VmHWM} seen over every run of this daemon, in
        bytes (kept across L{resetPeak} calls).
    """

    name = "registry"

    def __init__(self, dataDir: Path, workDir: Path) -> None:
        self.dataDir = dataDir
        self.workDir = workDir
        self.logPath = workDir / f"{self.name}-{dataDir.name}.log"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.overallPeak = 0

    def command(self) -> list[str]:
        """
        The command line that starts this daemon.
        """
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        """
        The environment for the daemon process.
        """
        return dict(os.environ)

    @property
    def pid(self) -> int:
        """
        The process id of the running daemon.
        """
        assert self.process is not None, f"{self.name} is not running"
        return self.process.pid

    def start(self, timeout: float = 120.0) -> float:
        """
        Start the daemon on a fresh free port and wait for C{GET /v2/} to answer 200.

        @return: seconds from process start to that first 200.
        @raise RuntimeError: if it exits or is not ready within C{timeout}.
        """
        self.port = freeLoopbackPort()
        self.dataDir.mkdir(parents=True, exist_ok=True)
        command = self.command()
        environment = self.environment()
        with self.logPath.open("ab") as log:
            started = time.monotonic()
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=environment
            )
        deadline = started + timeout
        while time.monotonic() < deadline:
            if probeV2(self.port) == 200:
                return time.monotonic() - started
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                raise RuntimeError(f"{self.name} exited with {code}:\n{self.logTail()}")
            time.sleep(0.002)
        self.kill()
        raise RuntimeError(f"{self.name} not ready in {timeout}s:\n{self.logTail()}")

    def stop(self, timeout: float = 60.0) -> None:
        """
        Stop the daemon with SIGTERM (SIGKILL if it lingers) and reap it.
        """
        if self.process is None:
            return
        self.notePeak()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(30)
        self.process = None

    def kill(self) -> None:
        """
        Kill the daemon with SIGKILL and reap it.
        """
        if self.process is not None:
            self.process.kill()
            self.process.wait(30)
            self.process = None

    def running(self) -> bool:
        """
        Whether the daemon process is alive.
        """
        return self.process is not None and self.process.poll() is None

    def notePeak(self) -> int:
        """
        Fold the current C{VmHWM} into L{overallPeak}; return C{VmHWM}.
        """
        if self.process is None:
            return 0
        peak = procstat.peakRssBytes(self.pid)
        self.overallPeak = max(self.overallPeak, peak)
        return peak

    def resetPeak(self) -> bool:
        """
        Reset C{VmHWM} to the current RSS, after folding it into L{overallPeak}.
        """
        self.notePeak()
        return procstat.resetPeakRss(self.pid)

    def logTail(self, size: int = 4000) -> str:
        """
        The last C{size} characters of the daemon's log.
        """
        try:
            return self.logPath.read_text(errors="replace")[-size:]
        except FileNotFoundError:
            return ""


class OcidDaemon(Daemon):
    """
    ocid, run as C{twistd -n ocid --port tcp:PORT:interface=127.0.0.1 --data DIR
    --no-access-log} (the reference runs with its access log off too).
    """

    name = "ocid"

    def command(self) -> list[str]:
        return [
            twistdPath(),
            "--nodaemon",
            "--pidfile=",
            "ocid",
            "--port",
            f"tcp:{self.port}:interface=127.0.0.1",
            "--data",
            str(self.dataDir),
            "--no-access-log",
        ]


REFERENCE_CONFIG = """\
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
"""


class ReferenceDaemon(Daemon):
    """
    The reference registry (distribution 2.8), with a generated C{config.yml}:
    filesystem storage in C{dataDir}, deletes enabled, no auth, no access log, and the
    in-memory blob descriptor cache of the stock Debian and upstream configs.
    """

    name = "reference"

    def command(self) -> list[str]:
        config = self.workDir / f"reference-config-{self.port}.yml"
        config.write_text(REFERENCE_CONFIG.format(root=self.dataDir, port=self.port))
        return [REFERENCE_BINARY, "serve", str(config)]

    def environment(self) -> dict[str, str]:
        environment = dict(os.environ)
        # The config file is the whole configuration: no REGISTRY_* overrides.
        for key in list(environment):
            if key.startswith("REGISTRY_"):
                del environment[key]
        return environment
