"""
Making files and renames survive a crash: fsync of files and of the directories that hold
their names.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import attrs


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


def _noStep(operation: str, name: str) -> None:
    pass


@attrs.frozen
class DurableDirectory:
    """
    The files of one directory, changed only in ways that survive a crash at any moment:
    new content is written to a temporary file, fsynced and renamed into place; every
    change of names is followed by an fsync of the directory.

    Blocking: call these from a thread, or during startup.

    @ivar path: the directory.
    @ivar step: called with an operation (C{"create"}, C{"write"}, C{"fsync"},
        C{"rename"}, C{"remove"}, C{"truncate"}, C{"fsyncdir"}) and the file name just
        before that operation is done.  A test hook: raising from it simulates a crash
        at that point.
    """

    path: Path
    step: Callable[[str, str], None] = _noStep

    def writeAtomically(self, name: str, chunks: Iterable[bytes]) -> None:
        """
        Make C{name} hold the concatenated C{chunks}, or (after a crash at any moment)
        whatever it held before plus, at worst, a leftover C{name + ".tmp"}.
        """
        temporary = name + ".tmp"
        target = self.path / temporary
        self.step("create", temporary)
        with open(target, "wb") as f:
            for chunk in chunks:
                self.step("write", temporary)
                f.write(chunk)
            f.flush()
            self.step("fsync", temporary)
            os.fsync(f.fileno())
        self.step("rename", name)
        os.replace(target, self.path / name)
        self.syncNames()

    def remove(self, names: Iterable[str]) -> None:
        """
        Remove the files C{names} (those that exist), then fsync the directory.
        """
        removed = False
        for name in names:
            self.step("remove", name)
            try:
                os.unlink(self.path / name)
            except FileNotFoundError:
                continue
            removed = True
        if removed:
            self.syncNames()

    def rename(self, name: str, newName: str) -> None:
        """
        Rename C{name} to C{newName} (replacing it), then fsync the directory.
        """
        self.step("rename", newName)
        os.replace(self.path / name, self.path / newName)
        self.syncNames()

    def truncate(self, name: str, length: int) -> None:
        """
        Cut the file C{name} to C{length} bytes and fsync it.
        """
        self.step("truncate", name)
        with open(self.path / name, "r+b") as f:
            f.truncate(length)
            f.flush()
            self.step("fsync", name)
            os.fsync(f.fileno())

    def syncNames(self) -> None:
        """
        fsync the directory, making the names created, renamed or removed in it durable.
        """
        self.step("fsyncdir", ".")
        fsyncDirectory(self.path)
