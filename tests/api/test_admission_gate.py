"""The admission gate in process: slots and the intake budget, handed out strictly in arrival order."""

from __future__ import annotations

import asyncio

import pytest

from app.admission import INTAKE_MIN_BYTES, AdmissionGate, AdmissionLimits, Overloaded, Slot
from app.admission_guard import reserved_intake
from app.context import Timings

MiB = 1024 * 1024


def _gate(*, slots: int = 8, budget: int = 3 * MiB, queued: int = 16, timeout: float = 5) -> AdmissionGate:
    return AdmissionGate(
        AdmissionLimits(
            max_inflight=slots,
            max_queued=queued,
            queue_timeout_seconds=timeout,
            retry_after_seconds=1,
            max_intake_bytes=budget,
        )
    )


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_uploads_beyond_the_budget_wait_until_inputs_are_sent() -> None:
    gate = _gate()
    await gate.acquire(MiB)
    await gate.acquire(2 * MiB)
    third = asyncio.create_task(gate.acquire(MiB))
    await _settle()
    assert not third.done() and gate.queued == 1 and gate.intake_bytes == 3 * MiB
    gate.release_intake(MiB)  # the first request's inputs are with its upstream; it keeps its slot
    await asyncio.wait_for(third, 1)
    assert gate.intake_bytes == 3 * MiB and gate.inflight == 3


async def test_an_upload_larger_than_the_budget_goes_alone() -> None:
    gate = _gate()
    await gate.acquire(MiB)
    large = asyncio.create_task(gate.acquire(10 * MiB))
    await _settle()
    assert not large.done()
    gate.release_intake(MiB)
    await asyncio.wait_for(large, 1)
    assert gate.intake_bytes == 10 * MiB
    small = asyncio.create_task(gate.acquire(MiB))
    await _settle()
    assert not small.done()  # nothing more while it holds over the budget
    gate.release_intake(10 * MiB)
    await asyncio.wait_for(small, 1)


async def _large_one_waiting() -> tuple[AdmissionGate, asyncio.Task[None]]:
    """A gate with 2 of its 3 MiB taken, and a 2 MiB upload waiting for them."""
    gate = _gate()
    await gate.acquire(2 * MiB)
    large = asyncio.create_task(gate.acquire(2 * MiB))
    await _settle()
    return gate, large


async def test_a_waiting_upload_holds_back_the_uploads_behind_it_not_the_rest() -> None:
    # Uploads in arrival order: a stream of small ones must not starve a large one. A generation
    # reserves no bytes: it takes a free slot at once, queued upload or not.
    gate, large = await _large_one_waiting()
    small = asyncio.create_task(gate.acquire(MiB))
    generation = asyncio.create_task(gate.acquire(0))
    await _settle()
    assert generation.done() and not large.done() and not small.done()
    gate.release_intake(2 * MiB)
    await asyncio.wait_for(asyncio.gather(large, small), 1)
    assert gate.intake_bytes == 3 * MiB and gate.inflight == 4


async def test_a_request_back_from_its_upstream_is_not_held_back_by_an_upload() -> None:
    gate, large = await _large_one_waiting()
    gate.release()  # the first upload's request waits on its upstream, its bytes still reserved
    await asyncio.wait_for(gate.reacquire(), 1)
    assert not large.done() and gate.inflight == 1


async def test_without_a_free_slot_arrivals_keep_their_order() -> None:
    gate = _gate(slots=1)
    await gate.acquire(0)
    upload = asyncio.create_task(gate.acquire(MiB))
    await _settle()
    generation = asyncio.create_task(gate.acquire(0))
    await _settle()
    gate.release()
    await _settle()
    assert upload.done() and not generation.done()  # the earlier arrival got the one slot
    gate.release()
    await asyncio.wait_for(generation, 1)


async def test_a_waiter_that_gives_up_lets_those_behind_it_through() -> None:
    gate, large = await _large_one_waiting()
    small = asyncio.create_task(gate.acquire(MiB))
    await _settle()
    large.cancel()  # its client left
    await asyncio.wait_for(small, 1)
    assert gate.queued == 0 and gate.intake_bytes == 3 * MiB


async def test_waiting_for_the_budget_times_out_as_the_queue_does() -> None:
    gate = _gate(timeout=0.05)
    await gate.acquire(3 * MiB)
    with pytest.raises(Overloaded):
        await gate.acquire(MiB)
    assert gate.queued == 0 and gate.intake_bytes == 3 * MiB


async def test_slots_still_bound_requests_within_the_budget() -> None:
    gate = _gate(slots=1)
    await gate.acquire(MiB)
    second = asyncio.create_task(gate.acquire(MiB))
    await _settle()
    assert not second.done()
    gate.release()  # the slot, not the bytes: the first request is still sending its inputs
    await asyncio.wait_for(second, 1)
    assert gate.intake_bytes == 2 * MiB


async def test_a_download_that_fits_is_reserved_at_once() -> None:
    gate = _gate()
    await gate.acquire(MiB)
    await asyncio.wait_for(gate.exchange(MiB, 2 * MiB), 1)  # its body's MiB, and a 1 MiB download
    assert gate.intake_bytes == 2 * MiB


async def test_a_download_waits_for_room_ahead_of_the_uploads_behind_it() -> None:
    # A JSON edit (1 MiB body) about to download a 2 MiB input, with 3 of 3 MiB taken: it waits, and
    # an upload arriving meanwhile does not take the MiB it gave back while waiting.
    gate = _gate()
    await gate.acquire(MiB)
    await gate.acquire(2 * MiB)
    download = asyncio.create_task(gate.exchange(MiB, 3 * MiB))
    await _settle()
    upload = asyncio.create_task(gate.acquire(MiB))
    generation = asyncio.create_task(gate.acquire(0))
    await _settle()
    assert not download.done() and not upload.done() and generation.done()
    assert gate.intake_bytes == 2 * MiB  # its own MiB given back while it waits
    gate.release_intake(2 * MiB)  # the other upload is with its upstream
    await asyncio.wait_for(download, 1)
    assert gate.intake_bytes == 3 * MiB and not upload.done()
    gate.release_intake(3 * MiB)
    await asyncio.wait_for(upload, 1)


async def test_two_requests_growing_at_once_do_not_wait_on_each_other() -> None:
    # Each holds half the budget and wants more than the rest: holding on while waiting, each would
    # wait for the other for ever. Waiting, each holds nothing: the first goes alone, then the second.
    gate = _gate(budget=2 * MiB)
    await gate.acquire(MiB)
    await gate.acquire(MiB)
    first = asyncio.create_task(gate.exchange(MiB, 3 * MiB))
    await _settle()
    second = asyncio.create_task(gate.exchange(MiB, 3 * MiB))
    await asyncio.wait_for(first, 1)
    await _settle()
    assert not second.done() and gate.intake_bytes == 3 * MiB
    gate.release_intake(3 * MiB)
    await asyncio.wait_for(second, 1)
    assert gate.intake_bytes == 3 * MiB


async def test_a_download_given_up_lets_the_uploads_behind_it_through() -> None:
    gate = _gate()
    await gate.acquire(3 * MiB)
    await gate.acquire(0)
    download = asyncio.create_task(gate.exchange(0, 2 * MiB))
    await _settle()
    upload = asyncio.create_task(gate.acquire(MiB))
    await _settle()
    gate.release_intake(MiB)
    await _settle()
    assert not upload.done()  # its MiB would fit, but it is behind the download, whose 2 MiB do not
    download.cancel()  # its client left
    await asyncio.wait_for(upload, 1)
    assert gate.intake_bytes == 3 * MiB


async def test_a_slot_keeps_a_download_s_bytes_until_its_inputs_are_sent() -> None:
    gate = _gate()
    await gate.acquire(MiB)
    slot = Slot(gate, Timings(started=0.0), MiB)
    assert await slot.reserve_intake(INTAKE_MIN_BYTES - 1) == 0  # a small download reserves nothing
    assert await slot.reserve_intake(MiB) == MiB
    slot.return_intake(MiB // 2)  # it held half a MiB
    assert gate.intake_bytes == MiB + MiB // 2
    slot.inputs_sent()
    assert gate.intake_bytes == 0


async def test_a_slot_closed_while_its_download_waits_holds_nothing() -> None:
    gate = _gate()
    await gate.acquire(3 * MiB)
    await gate.acquire(0)
    slot = Slot(gate, Timings(started=0.0))
    waiting = asyncio.create_task(slot.reserve_intake(MiB))
    await _settle()
    slot.close()  # the request ended (its client left) while it waited
    gate.release_intake(3 * MiB)
    assert await asyncio.wait_for(waiting, 1) == 0
    assert gate.intake_bytes == 0


async def _one_slot_taken() -> tuple[AdmissionGate, Slot]:
    """A gate of one slot, taken by the request whose :class:`Slot` is returned."""
    gate = _gate(slots=1)
    await gate.acquire(0)
    return gate, Slot(gate, Timings(started=0.0))


async def test_a_slot_taken_back_early_is_taken_once() -> None:
    # A request waiting on its upstream takes its slot back before fetching a finished result (two of
    # its calls finishing at once), while another request holds the only slot.
    gate, slot = await _one_slot_taken()
    async with slot.released():
        await gate.acquire(0)  # another request takes the slot handed on
        first, second = asyncio.create_task(slot.take_back()), asyncio.create_task(slot.take_back())
        await _settle()
        assert not first.done() and not second.done()  # the result waits upstream meanwhile
        gate.release()
        await asyncio.wait_for(asyncio.gather(first, second), 1)
        assert gate.inflight == 1
    assert gate.inflight == 1  # the end of released() finds it held: not taken a second time
    slot.close()
    assert gate.inflight == 0


async def test_a_slot_handed_on_again_after_a_failover_is_taken_back_at_the_end() -> None:
    gate, slot = await _one_slot_taken()
    async with slot.released():
        await slot.take_back()  # the last job's result is fetched
        assert gate.inflight == 1
        slot.hand_on()  # it was bad: another deployment's job runs without the slot
        assert gate.inflight == 0
    assert gate.inflight == 1  # the run's end took it back
    slot.close()
    slot.hand_on()  # closed: nothing to hand on
    assert gate.inflight == 0


async def test_a_slot_handed_on_while_it_is_being_taken_back_is_handed_on_once_back() -> None:
    # One leg's last job waits for the slot to fetch its result while another leg fails over: the
    # failover's job must not run holding the slot.
    gate, slot = await _one_slot_taken()
    async with slot.released():
        await gate.acquire(0)  # another request holds the only slot
        coming_back = asyncio.create_task(slot.take_back())
        await _settle()
        slot.hand_on()  # the failover starts
        gate.release()  # the other request ends
        await asyncio.wait_for(coming_back, 1)
        assert gate.inflight == 0  # back, and handed on again at once
    assert gate.inflight == 1  # the run's end took it back
    slot.close()
    assert gate.inflight == 0


async def test_no_budget_bounds_nothing_but_slots() -> None:
    gate = _gate(budget=0)
    for _ in range(4):
        await gate.acquire(100 * MiB)
    await asyncio.wait_for(gate.exchange(100 * MiB, 200 * MiB), 1)
    assert gate.inflight == 4 and gate.queued == 0


RESERVING = AdmissionLimits(
    max_inflight=4,
    max_queued=8,
    queue_timeout_seconds=1,
    retry_after_seconds=1,
    max_intake_bytes=64 * MiB,
    body_caps={"/v1/images/edits": 100 * MiB, "/v1/images/generations": 4 * MiB},
    undeclared_intake_bytes=50 * MiB,
)


@pytest.mark.parametrize(
    ("headers", "reserved"),
    [
        ([(b"content-length", b"1000")], 0),  # a generation's JSON: held back by slots only
        ([(b"content-length", str(INTAKE_MIN_BYTES).encode())], INTAKE_MIN_BYTES),
        ([(b"content-length", str(3 * MiB).encode())], 3 * MiB),
        ([(b"content-length", str(4 * MiB).encode())], 4 * MiB),
        ([(b"content-length", str(100 * MiB).encode())], 100 * MiB),  # the largest body a route reads
        ([(b"content-length", str(100 * MiB + 1).encode())], 0),  # refused unread by its route
        ([(b"content-length", b"1" + b"0" * 30)], 0),
        ([(b"content-length", b"-5")], 0),
        ([(b"transfer-encoding", b"chunked")], 50 * MiB),  # may be as large as a file
        ([(b"transfer-encoding", b"gzip, Chunked")], 50 * MiB),
        ([], 0),  # no body
    ],
)
def test_what_an_edit_reserves_of_the_intake_budget(headers: list[tuple[bytes, bytes]], reserved: int) -> None:
    assert reserved_intake(headers, RESERVING, path="/v1/images/edits") == reserved


def test_a_generation_declaring_more_than_its_route_reads_reserves_nothing() -> None:
    body = [(b"content-length", str(4 * MiB).encode())]
    assert reserved_intake(body, RESERVING, path="/v1/images/generations") == 4 * MiB
    over = [(b"content-length", str(4 * MiB + 1).encode())]
    assert reserved_intake(over, RESERVING, path="/v1/images/generations") == 0
    assert reserved_intake(over, RESERVING, path="/v1/images/edits") == 4 * MiB + 1
