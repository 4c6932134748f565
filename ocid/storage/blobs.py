"""
Content-addressed blob files, shared by every repository, each written once.

Layout: C{<root>/<algorithm>/<first two hex digits>/<hex>}.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import attrs

from ocid.digest import Digest
from ocid.errors import StorageError
from ocid.storage.durable import fsyncDirectory, makeDirectories


@attrs.frozen
class BlobStore:
    """
    The blob files under C{root}.  Paths come only from validated L{Digest}s, so no input
    can name a file outside C{root}.
    """

    root: Path

    def path(self, digest: Digest) -> Path:
        """
        Where the blob with C{digest} lives (whether or not it exists).
        """
        return self.root / digest.algorithm / digest.hex[:2] / digest.hex

    def size(self, digest: Digest) -> int | None:
        """
        The size of the stored blob, or C{None} if it is not stored.
        """
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            return None

    def read(self, digest: Digest) -> bytes:
        """
        The whole content of a (small) blob, such as a manifest.
        """
        return self.path(digest).read_bytes()

    def commit(self, source: Path, digest: Digest) -> None:
        """
        Move the fully written, verified file C{source} into place as blob C{digest},
        durably: the file is fsynced, renamed, and its directory fsynced.  If the blob is
        already stored, C{source} is removed instead.  Blocking: call it in a thread.
        """
        target = self.path(digest)
        if target.exists():
            source.unlink()
            return
        fd = os.open(source, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        makeDirectories(target.parent, self.root)
        os.replace(source, target)
        fsyncDirectory(target.parent)

    def write(self, digest: Digest, data: bytes) -> None:
        """
        Store C{data} (whose digest the caller has computed) durably as blob C{digest}.
        Concurrent writers of the same blob each write a temporary file of their own; the
        last rename wins, with the same bytes.  Blocking: call it in a thread.

        @raise StorageError: if the disk refused the write; no temporary file is left.
        """
        target = self.path(digest)
        if target.exists():
            return
        try:
            makeDirectories(target.parent, self.root)
            temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
            try:
                with open(temporary, "xb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(temporary, target)
            except BaseException:
                temporary.unlink(missing_ok=True)
                raise
            fsyncDirectory(target.parent)
        except OSError as e:
            raise StorageError(f"could not store blob {digest}: {e}") from e
