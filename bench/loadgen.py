"""
Request-rate load generators: C{wrk} where it works, and a single-threaded epoll
keep-alive client of our own for the rest.

C{wrk} 4.1 cannot measure C{HEAD}: it waits for the body that the C{Content-Length}
of a C{HEAD} response announces but never comes (wg/wrk issue 198), and so reports 0
requests. L{pyLoad} knows that a C{HEAD} response has no body.
"""

from __future__ import annotations

import os
import re
import resource
import selectors
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass

WRK = "/usr/bin/wrk"


@dataclass
class LoadResult:
    """
    The outcome of one fixed-duration load run.

    @ivar requests: completed requests with a 2xx status.
    @ivar seconds: how long the run took.
    @ivar p50: median latency, in seconds.
    @ivar p99: 99th percentile latency, in seconds.
    @ivar errors: failed requests (non-2xx, socket errors, timeouts).
    @ivar clientCpu: CPU seconds the load generator itself used.
    @ivar engine: C{"wrk"} or C{"py"}.
    """

    requests: int
    seconds: float
    p50: float
    p99: float
    errors: int
    clientCpu: float
    engine: str

    @property
    def rate(self) -> float:
        """
        Successful requests per second.
        """
        return self.requests / self.seconds if self.seconds else 0.0


def wrkAvailable() -> bool:
    """
    Whether C{wrk} is installed.
    """
    return os.access(WRK, os.X_OK) or shutil.which("wrk") is not None


WRK_SCRIPT = """\
wrk.method = "{method}"
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCHRESULT %d %d %d %d %d %d %d %d %d\\n",
    summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(99), e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def wrkLoad(
    port: int,
    path: str,
    headers: dict[str, str],
    connections: int,
    duration: float,
    method: str = "GET",
) -> LoadResult:
    """
    Run C{wrk} (one thread, C{connections} keep-alive connections) against
    C{http://127.0.0.1:port/path} for C{duration} seconds.
    """
    if method == "HEAD":
        raise ValueError("wrk 4.1 cannot measure HEAD; use pyLoad")
    headerLines = "\n".join(
        f'wrk.headers["{name}"] = "{value}"' for name, value in headers.items()
    )
    script = WRK_SCRIPT.format(method=method, headers=headerLines)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
        scriptPath = f.name
    try:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        result = subprocess.run(
            [
                shutil.which("wrk") or WRK,
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(duration))}s",
                "--timeout",
                "10s",
                "-s",
                scriptPath,
                f"http://127.0.0.1:{port}{path}",
            ],
            capture_output=True,
            text=True,
            timeout=duration + 60,
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        os.unlink(scriptPath)
    match = re.search(r"BENCHRESULT((?: -?\d+){9})", result.stdout)
    if not match:
        raise RuntimeError(f"wrk failed: {result.stdout}\n{result.stderr}")
    requests, durationUs, p50, p99, *errors = (int(x) for x in match.group(1).split())
    statusErrors = errors[3]
    return LoadResult(
        requests=requests - statusErrors,
        seconds=durationUs / 1e6,
        p50=p50 / 1e6,
        p99=p99 / 1e6,
        errors=sum(errors),
        clientCpu=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        engine="wrk",
    )


_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:[^\r]*chunked", re.IGNORECASE)


class _Client:
    """
    One keep-alive connection of L{pyLoad} with its request in flight.
    """

    __slots__ = ("sock", "buffer", "sentAt", "headEnd", "bodyEnd", "chunked")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.sentAt = 0.0
        self.headEnd = -1
        self.bodyEnd = -1
        self.chunked = False


def _percentile(sortedValues: list[float], fraction: float) -> float:
    if not sortedValues:
        return 0.0
    index = min(len(sortedValues) - 1, int(fraction * len(sortedValues)))
    return sortedValues[index]


def pyLoad(
    port: int,
    path: str,
    headers: dict[str, str],
    connections: int,
    duration: float,
    method: str = "GET",
    maxRequests: int = 10_000_000,
) -> LoadResult:
    """
    Keep C{connections} keep-alive connections busy with one request each in flight,
    for C{duration} seconds or C{maxRequests} requests, from one thread with epoll.
    """
    isHead = method == "HEAD"
    request = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        + "\r\n"
    ).encode()
    selector = selectors.DefaultSelector()
    latencies: list[float] = []
    errors = 0
    sent = 0
    cpuBefore = time.process_time()
    started = time.perf_counter()
    deadline = started + duration

    def connect() -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        client = _Client(sock)
        selector.register(sock, selectors.EVENT_READ, client)
        send(client)

    def send(client: _Client) -> None:
        nonlocal sent
        client.buffer = b""
        client.headEnd = client.bodyEnd = -1
        client.chunked = False
        client.sentAt = time.perf_counter()
        client.sock.send(request)
        sent += 1

    for _ in range(connections):
        connect()
    inFlight = connections
    while inFlight:
        now = time.perf_counter()
        if now > deadline + 10:
            errors += inFlight
            break
        for key, _ in selector.select(timeout=1.0):
            client: _Client = key.data
            try:
                data = client.sock.recv(262144)
            except OSError:
                data = b""
            if not data:
                errors += 1
                selector.unregister(client.sock)
                client.sock.close()
                inFlight -= 1
                if time.perf_counter() < deadline and sent < maxRequests:
                    connect()
                    inFlight += 1
                continue
            client.buffer += data
            buffer = client.buffer
            if client.headEnd < 0:
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    continue
                client.headEnd = end + 4
                head = buffer[:end]
                if isHead or head[9:12] in (b"204", b"304"):
                    client.bodyEnd = client.headEnd
                elif _CHUNKED.search(head):
                    client.chunked = True
                else:
                    match = _CONTENT_LENGTH.search(head)
                    client.bodyEnd = client.headEnd + (int(match.group(1)) if match else 0)
            if client.chunked:
                if not buffer.endswith(b"0\r\n\r\n"):
                    continue
            elif len(buffer) < client.bodyEnd:
                continue
            doneAt = time.perf_counter()
            if buffer[9:10] == b"2":
                latencies.append(doneAt - client.sentAt)
            else:
                errors += 1
            if doneAt < deadline and sent < maxRequests:
                send(client)
            else:
                selector.unregister(client.sock)
                client.sock.close()
                inFlight -= 1
    seconds = time.perf_counter() - started
    for key in list(selector.get_map().values()):
        key.fileobj.close()  # type: ignore[union-attr]
    selector.close()
    latencies.sort()
    return LoadResult(
        requests=len(latencies),
        seconds=seconds,
        p50=_percentile(latencies, 0.50),
        p99=_percentile(latencies, 0.99),
        errors=errors,
        clientCpu=time.process_time() - cpuBefore,
        engine="py",
    )


def load(
    port: int,
    path: str,
    headers: dict[str, str],
    connections: int,
    duration: float,
    method: str = "GET",
    engine: str = "auto",
) -> LoadResult:
    """
    Measure request rate with C{wrk} when it can (installed, not C{HEAD}, at least one
    second since C{wrk} counts whole seconds, C{engine} not C{"py"}), else with
    L{pyLoad}.
    """
    useWrk = (
        engine in ("auto", "wrk") and method != "HEAD" and duration >= 1 and wrkAvailable()
    )
    if useWrk:
        return wrkLoad(port, path, headers, connections, duration, method)
    return pyLoad(port, path, headers, connections, duration, method)
