"""
Append many tags to a stopped ocid's data directory through ocid's own journal API
(L{ocid.journal.Journal}), not over HTTP: one C{TagManifest} transaction per tag, as if
each had been pushed, with ocid's group commit and automatic compaction.

Run as C{python -m bench.ocidjournal DATA_DIR REPOSITORY DIGEST FIRST COUNT}: it needs a
Twisted reactor, so it runs in a process of its own.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from twisted.internet import defer, task

WINDOW = 5000


async def appendTags(
    reactor: Any, dataDir: Path, repository: str, digest: str, first: int, count: int
) -> None:
    """
    Append tags C{t<first>} ... C{t<first+count-1>} of C{repository}, all pointing at
    C{digest}, C{WINDOW} appends in flight at a time; then let any compaction in
    progress finish, and close the journal.
    """
    from ocid.index import RegistryIndex
    from ocid.journal import Journal, TagManifest

    journal = Journal.open(dataDir / "journal", RegistryIndex(), reactor)
    try:
        end = first + count
        for start in range(first, end, WINDOW):
            appends = [
                journal.append([TagManifest(repository, f"t{i}", digest)])
                for i in range(start, min(start + WINDOW, end))
            ]
            await defer.gatherResults(appends, consumeErrors=True)
        if getattr(journal, "_compacting", None) is not None:
            # Joins the compaction in progress; closing now would give it up.
            await journal.compact()
    finally:
        await journal.close()


def main(argv: list[str]) -> None:
    """
    Parse C{DATA_DIR REPOSITORY DIGEST FIRST COUNT} and append the tags.
    """
    dataDir, repository, digest, first, count = argv
    started = time.monotonic()

    def run(reactor: Any) -> defer.Deferred[None]:
        return defer.ensureDeferred(
            appendTags(reactor, Path(dataDir), repository, digest, int(first), int(count))
        )

    try:
        task.react(run)
    finally:
        print(
            f"appended {count} tags in {time.monotonic() - started:.1f}s", file=sys.stderr
        )


if __name__ == "__main__":
    main(sys.argv[1:])
