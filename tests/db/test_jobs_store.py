"""The jobs table on SQLite and PostgreSQL: claims are exclusive, leases expire, late writes are refused."""

from __future__ import annotations

import asyncio

from app.db import Database
from app.jobs.models import JobRequest, RecordedHandle
from app.jobs.store import JobStore

LEASE_MS = 10_000
REQUEST = JobRequest(
    mode="generate", fields={"model": "m", "prompt": "p"}, base_url="http://gw/", response_format="url"
)


async def _queue(store: JobStore, count: int, *, now_ms: int = 1_000, key_id: str = "key:a") -> list[str]:
    ids = [f"job_{i:024x}" for i in range(count)]
    for offset, job_id in enumerate(ids):
        await store.create(
            job_id=job_id,
            key_id=key_id,
            model="m",
            request=REQUEST,
            inputs=[b"in"],
            webhook_url=None,
            now_ms=now_ms + offset,
        )
    return ids


async def test_concurrent_claims_never_hand_one_job_to_two_processes(database: Database) -> None:
    store = JobStore(database)
    ids = await _queue(store, 40)
    claims = await asyncio.gather(*(store.claim(f"process-{n}", 7, now_ms=5_000, lease_ms=LEASE_MS) for n in range(8)))
    claimed = [job.id for claim in claims for job in claim]
    assert sorted(claimed) == ids  # every job once, none twice
    assert all(job.inputs == [b"in"] and job.runs == 1 for claim in claims for job in claim)
    assert await store.claim("late", 10, now_ms=5_001, lease_ms=LEASE_MS) == []


async def test_oldest_jobs_are_claimed_first(database: Database) -> None:
    store = JobStore(database)
    ids = await _queue(store, 5)
    assert [job.id for job in await store.claim("p", 2, now_ms=5_000, lease_ms=LEASE_MS)] == ids[:2]


async def test_an_expired_lease_lets_another_process_take_the_job_with_its_upstream_jobs(database: Database) -> None:
    store = JobStore(database)
    [job_id] = await _queue(store, 1)
    [first] = await store.claim("dead", 1, now_ms=2_000, lease_ms=LEASE_MS)
    handle = RecordedHandle(index=0, provider="fal", upstream="fal-ai/x", request_id="r-1", state={"status_url": "u"})
    await store.save_progress("dead", job_id, [handle])
    assert await store.claim("other", 1, now_ms=2_000 + LEASE_MS - 1, lease_ms=LEASE_MS) == []  # still held
    [taken] = await store.claim("other", 1, now_ms=2_000 + LEASE_MS + 1, lease_ms=LEASE_MS)
    assert (taken.id, taken.runs, taken.handles) == (job_id, 2, (handle,))
    # The dead process's late writes change nothing: the job is the other one's now.
    assert await store.renew("dead", [job_id], now_ms=20_000, lease_ms=LEASE_MS) == set()
    assert not await store.complete("dead", job_id, result={}, images=[b"x"], now_ms=20_000, ttl_ms=1)
    assert await store.renew("other", [job_id], now_ms=20_000, lease_ms=LEASE_MS) == {job_id}
    assert first.runs == 1


async def test_a_released_job_is_taken_over_at_once(database: Database) -> None:
    store = JobStore(database)
    [job_id] = await _queue(store, 1)
    await store.claim("stopping", 1, now_ms=2_000, lease_ms=LEASE_MS)
    await store.release("stopping", [job_id])
    assert [job.id for job in await store.claim("next", 1, now_ms=2_001, lease_ms=LEASE_MS)] == [job_id]


async def test_a_cancelled_job_is_neither_claimed_nor_completed(database: Database) -> None:
    store = JobStore(database)
    queued, running = await _queue(store, 2)
    [claimed] = await store.claim("p", 1, now_ms=5_000, lease_ms=LEASE_MS)
    assert claimed.id == queued
    assert await store.cancel(queued, "key:a", now_ms=6_000, ttl_ms=1_000)
    assert not await store.cancel(queued, "key:a", now_ms=6_000, ttl_ms=1_000)  # already
    assert not await store.cancel(running, "key:other", now_ms=6_000, ttl_ms=1_000)  # not its key
    assert not await store.complete("p", queued, result={}, images=[], now_ms=7_000, ttl_ms=1)
    assert await store.renew("p", [queued], now_ms=7_000, lease_ms=LEASE_MS) == set()
    assert (await store.statuses([queued]))[queued] == "cancelled"
    row = await store.get(queued, "key:a")
    assert row is not None and (row.status, row.finished_ms, row.expires_ms) == ("cancelled", 6_000, 7_000)


async def test_a_job_is_visible_to_its_own_key_only(database: Database) -> None:
    store = JobStore(database)
    [job_id] = await _queue(store, 1, key_id="key:a")
    assert await store.get(job_id, "key:b") is None
    row = await store.get(job_id, "key:a")
    assert row is not None and row.request == REQUEST
    assert await store.unfinished("key:a") == 1 and await store.unfinished("key:b") == 0


async def test_finishing_drops_the_inputs_keeps_the_answer_and_queues_the_webhook(database: Database) -> None:
    store = JobStore(database)
    job_id = "job_" + "f" * 24
    await store.create(
        job_id=job_id,
        key_id="k",
        model="m",
        request=REQUEST,
        inputs=[b"input"],
        webhook_url="https://example.com/hook",
        now_ms=1_000,
    )
    await store.claim("p", 1, now_ms=2_000, lease_ms=LEASE_MS)
    assert await store.complete("p", job_id, result={"data": [{}]}, images=[b"png"], now_ms=3_000, ttl_ms=500)
    row = await store.get(job_id)
    assert row is not None and row.status == "completed" and row.result == {"data": [{}]}
    assert await store.result_images(job_id) == [b"png"]
    assert (row.webhook_status, row.started_ms, row.finished_ms, row.expires_ms) == ("pending", 2_000, 3_000, 3_500)
    # Deliveries are claimed like jobs: once, until their next try is due.
    claims = await asyncio.gather(*(store.claim_webhooks(5, now_ms=3_000, lease_ms=LEASE_MS) for _ in range(4)))
    assert sorted(job for claim in claims for job in claim) == [job_id]
    await store.webhook_tried(job_id, http_status=500, next_ms=4_000, delivered=False)
    assert await store.claim_webhooks(5, now_ms=3_999, lease_ms=LEASE_MS) == []
    assert await store.claim_webhooks(5, now_ms=4_000, lease_ms=LEASE_MS) == [job_id]
    await store.webhook_tried(job_id, http_status=204, next_ms=None, delivered=True)
    row = await store.get(job_id)
    assert row is not None and (row.webhook_status, row.webhook_attempts) == ("delivered", 2)
    assert await store.sweep(now_ms=3_499) == 0
    assert await store.sweep(now_ms=3_500) == 1
    assert await store.get(job_id) is None


async def test_a_failure_is_kept_with_its_error(database: Database) -> None:
    store = JobStore(database)
    [job_id] = await _queue(store, 1)
    await store.claim("p", 1, now_ms=2_000, lease_ms=LEASE_MS)
    error = {"message": "no", "type": "upstream_error", "param": None, "code": "upstream_error"}
    assert await store.fail("p", job_id, status=502, error=error, now_ms=3_000, ttl_ms=10)
    row = await store.get(job_id)
    assert row is not None and (row.status, row.error, row.webhook_status) == ("failed", error, None)
