"""A request's admission as a route's run sees it (:class:`RequestAdmission`), recording what the run
tells and asks it, in order."""

from __future__ import annotations


class RecordingAdmission:
    def __init__(self, events: list[str]) -> None:
        self.events = events

    def inputs_sent(self) -> None:
        self.events.append("inputs sent")

    async def reserve_intake(self, more: int) -> int:
        self.events.append(f"reserve {more}")
        return more

    async def take_slot_back(self) -> None:
        self.events.append("room made")

    def hand_slot_on(self) -> None:
        self.events.append("slot handed on")
