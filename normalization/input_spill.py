"""A waiting request's input images leave memory once its upstream jobs have them.

An edit's input is needed while an attempt sends it upstream, and again only should the request fail
over (or an adapter re-send it); while a slow job waits (fal: 5 to 120 s) it would otherwise cost
its size in memory per waiting request. The router (:mod:`normalization.routing.router`) therefore:

- pins the images of an attempt's calls before running them (reading them back from disk, off the
  event loop, when they were spilled);
- unpins a call's images once its upstream has accepted the job: the adapter reports that through
  :meth:`providers.base.UpstreamTracker.started` (fal, Replicate), which :class:`SpillingTracker`
  hears for every request, async job or not; an image nobody pins any more is written to a file
  under the spill directory (off the loop) and dropped from memory; when the route cannot fail over
  (one deployment, or one forced), no later attempt can need it, so it is dropped without a file
  (writing 1 MiB per waiting edit cost a burst of edits a quarter of the gateway's CPU); such a
  route's calls are all pinned before its legs start, so no leg drops what a later one still sends;
- unpins the rest when the attempt ends (without spilling: an adapter that never reports a job
  answered within the attempt, and the request is about to end or fail over);
- removes the request's files when its run ends, however it ends (success, failure, cancellation);
  a holder that is garbage-collected first removes its own file (:class:`core.held_bytes.HeldBytes`).

A disk that cannot take the file (full, read-only) leaves the image in memory: logged once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from core.held_bytes import HeldBytes
from providers.base import UpstreamCall, UpstreamHandle, UpstreamTracker

log = logging.getLogger("pixelgate.inputs")

SPILL_FILE_GLOB = "input-*.bin"


def call_holders(call: UpstreamCall) -> list[HeldBytes]:
    """The holders of ``call``'s images and mask, each once."""
    images = [*call.images, *([call.mask] if call.mask is not None else [])]
    return list({id(image.held): image.held for image in images}.values())


def sweep(directory: Path) -> int:
    """Create ``directory`` and remove spill files a previous process left there (it stopped before
    its requests ended). Blocking I/O: call it at start-up, off the loop. Returns how many."""
    directory.mkdir(parents=True, exist_ok=True)
    stale = list(directory.glob(SPILL_FILE_GLOB))
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


class InputSpill:
    """Moves pinned-out input images to files under ``directory``; ``None`` keeps everything in memory."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._warned = False

    async def pin(self, holders: Iterable[HeldBytes]) -> None:
        """Mark ``holders`` needed by an attempt, their bytes in memory (read back off the loop)."""
        pinned = list(holders)
        for held in pinned:  # all counted first, so that an attempt's end unpins exactly these
            held.pins += 1
        for held in pinned:
            if not held.in_memory:
                held.reloaded(await asyncio.to_thread(held.read_file))

    async def unpin(self, holders: Iterable[HeldBytes], *, spill: bool, needed_later: bool = True) -> None:
        """An attempt no longer needs ``holders``; with ``spill``, those nobody pins leave memory: to a
        file when ``needed_later`` (a failover may send them again), else for good."""
        for held in holders:
            held.pins -= 1
            if spill and held.pins == 0:
                if needed_later:
                    await self._spill(held)
                elif self.directory is not None:
                    held.forget()

    async def release(self, holders: Iterable[HeldBytes]) -> None:
        """The request's run ended: remove the files (off the loop). Spilled bytes are then gone."""
        paths = [path for held in holders if (path := held.discard()) is not None]
        if paths:
            await asyncio.to_thread(_remove, paths)

    async def _spill(self, held: HeldBytes) -> None:
        if self.directory is None or not held.in_memory:
            return
        if held.path is not None:  # written before a failover pinned it again: the file still holds it
            held.drop_memory()
            return
        try:
            path = await asyncio.to_thread(held.write_file, self.directory)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning("input images stay in memory: cannot write to %s (%s)", self.directory, exc)
            return
        held.spilled_to(path)


def _remove(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


class SpillingTracker(UpstreamTracker):
    """Hears that an attempt's call was accepted upstream and lets its images leave memory; tells
    ``on_accepted`` once every call of the attempt was, and waits for ``on_finished`` before a call's
    results are fetched; passes everything on to the request's own tracker (an async job's), if any."""

    def __init__(
        self,
        inner: UpstreamTracker | None,
        spill: InputSpill,
        pinned: dict[int, list[HeldBytes]],
        *,
        needed_later: bool = True,
        on_accepted: Callable[[], None] | None = None,
        on_finished: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._inner = inner
        self._on_accepted = on_accepted
        self._on_finished = on_finished
        self.finished_calls = 0
        """How many of the attempt's calls reported their upstream jobs finished."""
        self._spill = spill
        self._needed_later = needed_later
        """Whether a later attempt (a failover) may send these images again."""
        self.pinned = pinned
        """Each call's (by ``call.index``) pinned holders, until accepted upstream or the attempt ends."""

    @property
    def detaching(self) -> bool:
        """The request's tracker's (an async job's process stopping); never, without one."""
        return self._inner is not None and self._inner.detaching

    @detaching.setter
    def detaching(self, value: bool) -> None:
        if self._inner is not None:
            self._inner.detaching = value

    def previous(self, call: UpstreamCall) -> UpstreamHandle | None:
        return None if self._inner is None else self._inner.previous(call)

    async def started(self, call: UpstreamCall, handle: UpstreamHandle) -> None:
        holders = self.pinned.pop(call.index, None)
        if self._on_accepted is not None and not self.pinned:  # the attempt's last call accepted
            self._on_accepted()
        if self._inner is not None:
            await self._inner.started(call, handle)
        if holders:
            try:
                await self._spill.unpin(holders, spill=True, needed_later=self._needed_later)
            except Exception:  # started never raises (see UpstreamTracker): the image stays in memory
                log.exception("could not move an input image out of memory")

    async def finished(self, call: UpstreamCall) -> None:
        self.finished_calls += 1
        if self._inner is not None:
            await self._inner.finished(call)
        if self._on_finished is not None:
            await self._on_finished()

    async def end(self) -> None:
        """The attempt ended: whatever is still pinned is unpinned, kept in memory."""
        holders = [held for group in self.pinned.values() for held in group]
        self.pinned.clear()
        await self._spill.unpin(holders, spill=False)
