"""Bytes that can leave memory for a file while nobody needs them, and come back when someone does.

An edit's input image is needed while a provider takes it (the upload, the submit) and again only
should the request fail over or re-send; while its upstream job waits, keeping it in memory costs
the gateway its size per waiting request. :class:`HeldBytes` is the one holder of such bytes: the
image's users read :attr:`HeldBytes.data` as before; the request's owner (see
:mod:`normalization.input_spill`) pins it around each attempt, writes it to a file once every
attempt has been accepted upstream (:meth:`HeldBytes.spilled_to`), and removes the file when the
request ends (:meth:`HeldBytes.discard`). When no later attempt can need the bytes (a model with
one deployment cannot fail over), the owner drops them instead (:meth:`HeldBytes.forget`).

The bytes may be given as the pieces they arrived in (:data:`ByteChunks`: views into a request
body's chunks, as the multipart parser saw them): :attr:`HeldBytes.chunks` hands them on as they
are (an upload to an OpenAI-compatible upstream writes them one by one, a fal submit encodes them
to base64 piece by piece) and :attr:`HeldBytes.data` joins them once, for a user that needs one
buffer. A 4 MiB edit's image was joined on arrival before: one more 4 MiB copy per edit, in memory
the page faults of a fresh block each time.

Every state change happens on the event loop; the file I/O itself (:meth:`write_file`,
:meth:`read_file`) is the caller's to run off the loop. Reading :attr:`data` while the bytes are on
disk still works (a synchronous read, counted in :attr:`sync_reloads`): a safety net for a user
that reads outside an attempt, not the path a request takes.
"""

from __future__ import annotations

import os
import tempfile
import weakref
from pathlib import Path

ByteChunks = tuple[bytes | memoryview, ...]
"""Bytes as consecutive pieces, in order (read-only views or ``bytes``)."""


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


class HeldBytes:
    """One input's bytes: in memory, or in a file (then reloaded on use). Not thread-safe: use it on
    one event loop."""

    __slots__ = (
        "__weakref__",
        "_finalizer",
        "_forgotten",
        "_path",
        "_pieces",
        "pins",
        "size",
        "spills",
        "sync_reloads",
    )

    def __init__(self, data: bytes | ByteChunks) -> None:
        self._pieces: ByteChunks | None = (data,) if isinstance(data, bytes) else data
        """The bytes while in memory (one ``bytes`` once joined or reloaded); None while not."""
        self._path: Path | None = None
        self._finalizer: weakref.finalize[[Path], HeldBytes] | None = None
        self._forgotten = False
        self.size = sum(len(piece) for piece in self._pieces)
        self.pins = 0
        """Attempts that need the bytes in memory now (they are sending them upstream)."""
        self.spills = 0
        """Times the bytes left memory (a test's and a log's counter)."""
        self.sync_reloads = 0
        """Times :attr:`data` had to read the file on the caller's thread (the safety net)."""

    @property
    def data(self) -> bytes:
        """The bytes as one buffer: the pieces joined (once: the joined bytes replace them), or read
        back from the file (and kept in memory again) when they are on disk."""
        pieces = self._pieces
        if pieces is None:
            data = self.read_file()
            self.sync_reloads += 1
        elif len(pieces) == 1 and isinstance(pieces[0], bytes):
            return pieces[0]
        else:
            data = b"".join(pieces)
        self._pieces = (data,)
        return data

    @property
    def chunks(self) -> ByteChunks:
        """The bytes as the pieces they arrived in, never joined (one piece once :attr:`data` was read)."""
        return self._pieces if self._pieces is not None else (self.data,)

    @property
    def in_memory(self) -> bool:
        return self._pieces is not None

    @property
    def path(self) -> Path | None:
        """The file holding a copy of the bytes, once written (until :meth:`discard`)."""
        return self._path

    def write_file(self, directory: Path) -> Path:
        """Write the bytes to a new file under ``directory`` (blocking I/O: call it off the loop) and
        return its path; :meth:`spilled_to` then records it. Raises ``OSError`` (a full disk)."""
        pieces = self._pieces
        if pieces is None:
            raise RuntimeError("the bytes are not in memory")
        fd, name = tempfile.mkstemp(prefix="input-", suffix=".bin", dir=directory)
        try:
            with os.fdopen(fd, "wb") as file:
                file.writelines(pieces)
        except BaseException:
            _unlink(Path(name))
            raise
        return Path(name)

    def spilled_to(self, path: Path) -> bool:
        """Record that ``path`` holds the bytes and drop them from memory, unless an attempt pinned
        them meanwhile (then they stay in memory too, the file kept for the next spill). Returns
        whether they left memory."""
        if self._path is None:
            self._path = path
            # However the request ends (even one that never reaches discard), the file goes with the holder.
            self._finalizer = weakref.finalize(self, _unlink, path)
        elif path != self._path:
            _unlink(path)
        if self.pins:
            return False
        self._pieces = None
        self.spills += 1
        return True

    def forget(self) -> bool:
        """Drop the bytes for good, when nobody pinned them and no file holds them: for a request whose
        every possible attempt has already sent them. :attr:`data` then raises. Returns whether they
        left memory."""
        if self.pins or not self.in_memory or self._path is not None:
            return False
        self._pieces = None
        self._forgotten = True
        self.spills += 1
        return True

    def drop_memory(self) -> bool:
        """Drop the in-memory copy when a file already holds the bytes and nobody pinned them."""
        if self._path is None or self.pins or not self.in_memory:
            return False
        self._pieces = None
        self.spills += 1
        return True

    def read_file(self) -> bytes:
        """The bytes from the file (blocking I/O: call it off the loop)."""
        if self._forgotten:
            raise RuntimeError("the bytes were forgotten: every attempt that needed them has sent them")
        if self._path is None:
            raise RuntimeError("the bytes were discarded")
        return self._path.read_bytes()

    def reloaded(self, data: bytes) -> None:
        """Keep ``data`` (from :meth:`read_file`) in memory again."""
        if not self.in_memory:
            self._pieces = (data,)

    def discard(self) -> Path | None:
        """Forget the file (the caller removes the returned path, off the loop); the bytes are read
        back into memory first by the caller when they may still be needed. Without a file, nothing."""
        path, self._path = self._path, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        return path
