"""
Machine limits that bound what any registry can do here: hashing speed, disk write
speed with C{fdatasync}, and loopback TCP throughput.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

MIB = 1 << 20


@dataclass
class MachineLimits:
    """
    Measured limits, in MB/s (10^6 bytes per second).
    """

    sha256: float
    ddFdatasync: float
    loopbackTcp: float
    cores: int


def sha256Rate(total: int = 512 * MIB, piece: int = MIB) -> float:
    """
    How fast C{hashlib.sha256} digests data fed in C{piece}-sized pieces, in MB/s.
    """
    data = os.urandom(piece)
    hasher = hashlib.sha256()
    started = time.perf_counter()
    for _ in range(max(1, total // piece)):
        hasher.update(data)
    return total / (time.perf_counter() - started) / 1e6


def ddRate(directory: Path, count: int = 1024) -> float:
    """
    The rate of C{dd if=/dev/zero of=<file in directory> bs=1M count=COUNT
    conv=fdatasync}, in MB/s, computed from the bytes and seconds C{dd} reports.
    """
    target = directory / "dd-test.bin"
    try:
        result = subprocess.run(
            [
                "dd",
                "if=/dev/zero",
                f"of={target}",
                "bs=1M",
                f"count={count}",
                "conv=fdatasync",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        target.unlink(missing_ok=True)
    match = re.search(r"(\d+) bytes .* copied, ([\d.,e+-]+) s", result.stderr)
    if not match:
        raise RuntimeError(f"cannot read dd output: {result.stderr}")
    return int(match.group(1)) / float(match.group(2).replace(",", ".")) / 1e6


def loopbackRate(total: int = 1024 * MIB, piece: int = MIB) -> float:
    """
    Throughput of one TCP connection over 127.0.0.1, sender and receiver in two
    threads of this process, in MB/s.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    received = 0

    def receive() -> None:
        nonlocal received
        conn, _ = listener.accept()
        conn.settimeout(60)
        buffer = bytearray(piece)
        with conn:
            while received < total:
                n = conn.recv_into(buffer)
                if not n:
                    break
                received += n

    thread = threading.Thread(target=receive, daemon=True)
    thread.start()
    data = os.urandom(piece)
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sender:
        started = time.perf_counter()
        for _ in range(total // piece):
            sender.sendall(data)
        thread.join(120)
        elapsed = time.perf_counter() - started
    listener.close()
    return received / elapsed / 1e6


def measure(dataDirectory: Path, scale: float = 1.0) -> MachineLimits:
    """
    Measure every limit; C{scale} shrinks the amounts of data (for smoke runs).
    """
    size = max(16, int(1024 * scale))
    return MachineLimits(
        sha256=sha256Rate(max(16, int(512 * scale)) * MIB),
        ddFdatasync=ddRate(dataDirectory, size),
        loopbackTcp=loopbackRate(size * MIB),
        cores=os.cpu_count() or 1,
    )
