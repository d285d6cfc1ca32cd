"""What a route's run tells the gateway's admission control about one request, and asks of it.

The app's request context implements it (:class:`app.context.RequestContext`): the request's share of
the intake budget and its admission slot. A run without one (an async job, which holds neither) gets
:data:`UNBOUNDED` and runs the same, unbounded by them.
"""

from __future__ import annotations

from typing import Protocol


class RequestAdmission(Protocol):
    """One request's standing with admission control, as a route's run uses it."""

    def inputs_sent(self) -> None:
        """Every leg's inputs are with an upstream: the request's share of the intake budget goes back."""

    async def reserve_intake(self, more: int) -> int:
        """``more`` bytes of inputs are about to be sent again (a failover): reserve them first; returns
        what was reserved."""

    async def take_slot_back(self) -> None:
        """The run's last upstream job is done: take the admission slot back before its results are
        fetched (they wait upstream until the gateway has room)."""

    def hand_slot_on(self) -> None:
        """The run waits on an upstream again (a failover after the results were fetched): hand the
        slot on meanwhile."""


class _Unbounded:
    """The admission of a run that holds neither a slot nor a share of the intake budget."""

    def inputs_sent(self) -> None:
        return None

    async def reserve_intake(self, more: int) -> int:
        return 0

    async def take_slot_back(self) -> None:
        return None

    def hand_slot_on(self) -> None:
        return None


UNBOUNDED: RequestAdmission = _Unbounded()
"""Every step nothing to do: callers need not ask whether a run has an admission."""
