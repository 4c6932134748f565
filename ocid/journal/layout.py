"""
The files of the journal directory and what a directory listing says to replay.

The journal is a sequence of generations.  Generation N has a log, C{log.N}, holding the
transactions appended after the state that the snapshot C{snapshot.N} holds (generation 0
starts from the empty state and has no snapshot).  Compaction starts generation N+1 by
creating C{log.N+1}, writes C{snapshot.N+1} (the state at the end of C{log.N}) through a
temporary file, then removes the files of the generations before N+1.

So at any moment, also after a crash at any point of that, the state is the newest
snapshot (if any) followed by every log from its generation on, which are consecutive;
older files and temporary files are leftovers.  A missing file is never explained by a
crash and stops the start (see L{MissingJournalFile}).
"""

from __future__ import annotations

import re
from pathlib import Path

import attrs

from ocid.journal.log import LOG_MAGIC, CorruptJournal

#: The log of a data directory from before generations: generation 0's log.
LEGACY_LOG = "log"

_LOG = re.compile(r"^log\.(0|[1-9][0-9]*)$")
_SNAPSHOT = re.compile(r"^snapshot\.(0|[1-9][0-9]*)$")


def logName(generation: int) -> str:
    """
    The name of generation C{generation}'s log.
    """
    return f"log.{generation}"


def snapshotName(generation: int) -> str:
    """
    The name of generation C{generation}'s snapshot.
    """
    return f"snapshot.{generation}"


class MissingJournalFile(CorruptJournal):
    """
    A file the journal needs is missing: removed by hand, or lost.
    """

    def __init__(self, path: Path, what: str, repair: str) -> None:
        super().__init__(path, 0, f"{path.name} ({what}) is missing", repair)
        self.args = (
            f"journal file {path} ({what}) is missing. Nothing was changed. {repair}",
        )


@attrs.frozen
class Layout:
    """
    What the journal directory holds.

    @ivar snapshot: the generation of the snapshot to load, or C{None} for none.
    @ivar logs: the generations of the logs to replay after it, consecutive, in order;
        empty for a new directory.
    @ivar leftovers: names of files to remove: older generations and temporary files.
    @ivar legacy: whether the only log is L{LEGACY_LOG}, to be renamed C{log.0}.
    """

    snapshot: int | None
    logs: list[int]
    leftovers: list[str]
    legacy: bool = False

    @property
    def generation(self) -> int:
        """
        The current generation: that of the log appended to.
        """
        if self.logs:
            return self.logs[-1]
        return self.snapshot or 0


def scanLayout(directory: Path) -> Layout:
    """
    Read the listing of the journal directory.

    @raise MissingJournalFile: if a log or snapshot that must exist does not.
    """
    logs: list[int] = []
    snapshots: list[int] = []
    leftovers: list[str] = []
    legacy = False
    for path in directory.iterdir():
        name = path.name
        if match := _LOG.match(name):
            logs.append(int(match.group(1)))
        elif match := _SNAPSHOT.match(name):
            snapshots.append(int(match.group(1)))
        elif name.endswith(".tmp") or name == "log.new":
            leftovers.append(name)
        elif name == LEGACY_LOG:
            legacy = True
    logs.sort()
    if legacy:
        if logs or snapshots:
            raise CorruptJournal(
                directory / LEGACY_LOG,
                0,
                "an old-style log beside the logs of generations",
                "Move it out of the way if the newer files are the ones to keep.",
            )
        return Layout(None, [0], leftovers, legacy=True)
    snapshot = max(snapshots, default=None)
    first = snapshot or 0
    leftovers.extend(snapshotName(n) for n in snapshots if n < first)
    leftovers.extend(logName(n) for n in logs if n < first)
    logs = [n for n in logs if n >= first]
    if not logs:
        if snapshot is not None:
            _missing(directory, logName(first), "the log that follows the snapshot")
        return Layout(None, [], leftovers)
    if logs[0] != first:
        if snapshot is None:
            _missing(directory, snapshotName(logs[0]), "the snapshot its logs follow")
        _missing(directory, logName(first), "the log that follows the snapshot")
    for previous, current in zip(logs, logs[1:], strict=False):
        if current != previous + 1:
            _missing(directory, logName(previous + 1), "a log between others")
    return Layout(snapshot, logs, leftovers)


def _missing(directory: Path, name: str, what: str) -> None:
    path = directory / name
    if name.startswith("log."):
        repair = (
            f"If it is lost for good, start from what remains by creating it empty "
            f"(losing the changes it held): `printf {LOG_MAGIC.decode()} > {path}`."
        )
    else:
        repair = f"Restore the directory {directory} from a backup."
    raise MissingJournalFile(path, what, repair)
