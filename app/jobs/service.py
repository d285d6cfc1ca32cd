"""What the job endpoints do: accept a job, show one, cancel one. The routes (:mod:`app.api.jobs`) are thin.

A job belongs to the key that made it (its principal's ``key_id``); any other key is told it does
not exist (404 ``job_not_found``), as is an id that cannot be a job's.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import JsonValue

from app.db import unavailable_as_503
from app.jobs.models import JobRequest, is_job_id, job_object, new_job_id, now_ms
from app.jobs.results import JobResults
from app.jobs.runner import JobRunner
from app.jobs.store import JobStore
from core.errors import InvalidRequestError, NotFoundError, PayloadTooLargeError, RequestRateLimitError, UpstreamError
from normalization.request import EditInputs
from providers.fetch import FetchPolicy, check_destination

MAX_WEBHOOK_URL_CHARS = 2048


@dataclass(frozen=True)
class JobLimits:
    max_unfinished_per_key: int
    """Queued and running jobs one key may have (``PIXELGATE_MAX_CONCURRENT_PER_KEY``); 0: no limit."""
    max_input_bytes: int
    ttl_seconds: int


def _not_found(job_id: str) -> NotFoundError:
    return NotFoundError(f"No job found with id '{job_id}'.", param="job_id", code="job_not_found")


class Jobs:
    """The job endpoints' work over the store, the runner and the result renderer."""

    def __init__(
        self,
        *,
        store: JobStore,
        runner: JobRunner,
        results: JobResults,
        limits: JobLimits,
        webhook_policy: FetchPolicy,
    ) -> None:
        self._store = store
        self._runner = runner
        self._results = results
        self._limits = limits
        self._webhook_policy = webhook_policy

    async def submit(
        self,
        *,
        key_id: str,
        model: str,
        request: JobRequest,
        inputs: EditInputs | None,
        webhook_url: str | None,
    ) -> dict[str, JsonValue]:
        """Store a new queued job and wake this process's runner; its wire object.

        Raises 400 for a webhook URL the outbound guard refuses, 413 for inputs over
        ``max_input_bytes``, 429 ``too_many_jobs`` when the key has its maximum of unfinished jobs.
        """
        if webhook_url is not None:
            await self._check_webhook(webhook_url)
        parts = request.input_parts(inputs)
        size = sum(len(part) for part in parts)
        if size > self._limits.max_input_bytes:
            raise PayloadTooLargeError(
                f"the input images of an async job may total at most {self._limits.max_input_bytes} bytes "
                f"(these are {size})",
                param="image",
            )
        with unavailable_as_503():
            limit = self._limits.max_unfinished_per_key
            if limit and await self._store.unfinished(key_id) >= limit:
                raise RequestRateLimitError(
                    f"this key has {limit} unfinished async jobs, its maximum; wait for one to finish",
                    code="too_many_jobs",
                    headers={"retry-after": "1"},
                )
            row = await self._store.create(
                job_id=new_job_id(),
                key_id=key_id,
                model=model,
                request=request,
                inputs=parts,
                webhook_url=webhook_url,
                now_ms=now_ms(),
            )
        self._runner.wake()
        return job_object(row, None)

    async def show(self, job_id: str, key_id: str, base_url: str | None = None) -> dict[str, JsonValue]:
        """The job with its result or error (links to ``base_url``); 404 for another key's job or an unknown id."""
        if not is_job_id(job_id):
            raise _not_found(job_id)
        with unavailable_as_503():
            row = await self._store.get(job_id, key_id)
            if row is None:
                raise _not_found(job_id)
            return job_object(row, await self._results.render(row, base_url))

    async def cancel(self, job_id: str, key_id: str, base_url: str | None = None) -> dict[str, JsonValue]:
        """Cancel a queued or running job (its upstream job too); a finished job is shown unchanged."""
        if not is_job_id(job_id):
            raise _not_found(job_id)
        with unavailable_as_503():
            if await self._store.cancel(job_id, key_id, now_ms=now_ms(), ttl_ms=self._limits.ttl_seconds * 1000):
                self._runner.cancel_local(job_id)  # elsewhere, the runner holding it sees it at its next renewal
                self._runner.wake()  # the webhook of the cancelled job
        return await self.show(job_id, key_id, base_url)

    async def _check_webhook(self, url: str) -> None:
        if len(url) > MAX_WEBHOOK_URL_CHARS:
            raise InvalidRequestError(
                f"webhook_url is longer than {MAX_WEBHOOK_URL_CHARS} characters", param="webhook_url"
            )
        try:
            await check_destination(url, self._webhook_policy)
        except UpstreamError as exc:
            raise InvalidRequestError(
                f"webhook_url cannot be used: {exc.message} (webhooks go to https on a public address, or to a host "
                "in PIXELGATE_FETCH_ALLOW_HOSTS)",
                param="webhook_url",
                code="invalid_webhook_url",
            ) from exc
