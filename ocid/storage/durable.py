"""
Making files and renames survive a crash: fsync of files and of the directories that hold
their names.
"""

from __future__ import annotations

import os
from pathlib import Path


def fsyncDirectory(path: Path) -> None:
    """
    Flush the directory entry list of C{path} to disk, so that names created, renamed or
    removed in it survive a crash.
    """
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def makeDirectories(path: Path, root: Path) -> None:
    """
    Create C{path} and its missing parents below C{root}, fsyncing each parent whose
    entries changed.
    """
    missing = []
    current = path
    while not current.exists() and current != root:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir()
        except FileExistsError:
            continue
        fsyncDirectory(directory.parent)


def writeFileDurably(path: Path, data: bytes) -> None:
    """
    Write C{data} to C{path} atomically: a temporary file beside it, fsynced, renamed into
    place, and the directory fsynced.
    """
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
    fsyncDirectory(path.parent)
