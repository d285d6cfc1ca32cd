"""A tracker for adapter tests: notes what ``note()`` gave when the adapter asked for room for its results."""

from __future__ import annotations

from collections.abc import Callable

from providers.base import UpstreamCall, UpstreamHandle, UpstreamTracker


class RoomTracker(UpstreamTracker):
    def __init__(self, note: Callable[[], int]) -> None:
        self._note = note
        self.noted: int | None = None
        """``note()`` at the moment the adapter called :meth:`finished`; None if it never did."""

    def previous(self, call: UpstreamCall) -> UpstreamHandle | None:
        return None

    async def started(self, call: UpstreamCall, handle: UpstreamHandle) -> None:
        return None

    async def finished(self, call: UpstreamCall) -> None:
        self.noted = self._note()
