"""When a request's inputs are with its upstreams, for its share of the gateway's intake budget.

A request holds its share (``app.admission``) while its inputs are in memory to be sent. A route's
legs run at once, and a leg may fan out into several calls (``n`` on an upstream without it), each
holding its own encoding of the inputs until the upstream accepts it; so the share goes back once
every call of every leg was accepted (or, on an adapter that does not report acceptance, started),
not at the first. A failover resends a leg's inputs after the share went back (read back from their
spill file, encoded again): that send takes a share again first, given back the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable


async def _reserve_nothing(size: int) -> int:
    return 0


class PendingInputs:
    """Which legs of one route's run still have inputs to hand to an upstream.

    ``sent()`` is called each time the last leg with inputs left is sent: the first time gives the share
    back, a later one (after a resend) gives back what the resend took. ``reserve(size)`` takes
    ``size`` bytes of the budget again before a resend. Single event loop.
    """

    def __init__(
        self,
        legs: int,
        sent: Callable[[], None],
        reserve: Callable[[int], Awaitable[int]] | None = None,
    ) -> None:
        self._waiting = set(range(legs))
        self._sent = sent
        self._reserve = reserve or _reserve_nothing
        self._given_back = False

    def leg_sent(self, leg: int) -> None:
        """Every call of ``leg``'s current attempt has its inputs with the upstream (told again: nothing)."""
        if leg not in self._waiting:
            return
        self._waiting.remove(leg)
        if not self._waiting:
            self._given_back = True
            self._sent()

    async def resending(self, leg: int, size: int) -> None:
        """``leg``'s inputs (``size`` bytes) are about to be sent again, to another deployment."""
        self._waiting.add(leg)
        if self._given_back:
            await self._reserve(size)
