"""When a route's run gives its share of the intake budget back, and when it takes one again."""

from __future__ import annotations

import asyncio

from normalization.routing.pending_inputs import PendingInputs


def _pending(legs: int) -> tuple[PendingInputs, list[str]]:
    events: list[str] = []

    async def reserve(size: int) -> int:
        events.append(f"reserve {size}")
        return size

    return PendingInputs(legs, lambda: events.append("sent"), reserve), events


def test_the_share_goes_back_once_every_leg_was_sent() -> None:
    pending, events = _pending(3)
    pending.leg_sent(0)
    pending.leg_sent(0)  # told again (a call accepted twice): still one leg
    pending.leg_sent(2)
    assert events == []
    pending.leg_sent(1)
    assert events == ["sent"]


def test_a_resend_before_the_share_went_back_takes_nothing_more() -> None:
    pending, events = _pending(2)

    async def go() -> None:
        pending.leg_sent(0)
        await pending.resending(1, 5_000_000)  # leg 1 failed before its job was accepted
        pending.leg_sent(1)

    asyncio.run(go())
    assert events == ["sent"]


def test_a_resend_after_the_share_went_back_takes_its_size_and_gives_it_back() -> None:
    pending, events = _pending(2)

    async def go() -> None:
        pending.leg_sent(0)
        pending.leg_sent(1)
        await pending.resending(0, 5_000_000)  # leg 0's job failed upstream: sent elsewhere
        assert events == ["sent", "reserve 5000000"]
        pending.leg_sent(0)

    asyncio.run(go())
    assert events == ["sent", "reserve 5000000", "sent"]


def test_without_a_budget_hook_a_resend_reserves_nothing() -> None:
    events: list[str] = []
    pending = PendingInputs(1, lambda: events.append("sent"))

    async def go() -> None:
        pending.leg_sent(0)
        await pending.resending(0, 1)
        pending.leg_sent(0)

    asyncio.run(go())
    assert events == ["sent", "sent"]
