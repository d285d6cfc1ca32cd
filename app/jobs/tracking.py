"""A job's upstream jobs, recorded as the adapters report them, so a restart follows them again.

:class:`JobTracker` is the :class:`~providers.base.UpstreamTracker` of one run of one job. Each handle
an adapter reports is written to the job's row at once (conditional on the lease, see
:mod:`app.jobs.store`) before the adapter starts waiting; the next run of the job (after a restart,
or on another process that took it over) gets the recorded handles back and the adapters follow
those upstream jobs instead of starting new ones.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError

from app.db import error_summary
from app.jobs.models import RecordedHandle
from app.jobs.store import JobStore
from providers.base import UpstreamCall, UpstreamHandle, UpstreamTracker

log = logging.getLogger("pixelgate.jobs")


def _key(index: int, provider: str, upstream: str) -> tuple[int, str, str]:
    return (index, provider, upstream)


class JobTracker(UpstreamTracker):
    """Records one job's upstream handles under ``owner``'s lease; offers those of earlier runs."""

    def __init__(self, store: JobStore, owner: str, job_id: str, recorded: Sequence[RecordedHandle]) -> None:
        self._store = store
        self._owner = owner
        self._job_id = job_id
        self._handles = {_key(h.index, h.provider, h.upstream): h for h in recorded}
        self.detaching = False

    @property
    def handles(self) -> tuple[RecordedHandle, ...]:
        return tuple(self._handles.values())

    def previous(self, call: UpstreamCall) -> UpstreamHandle | None:
        recorded = self._handles.get(_key(call.index, call.provider, call.upstream))
        if recorded is None:
            return None
        return UpstreamHandle(request_id=recorded.request_id, state=recorded.state)

    async def started(self, call: UpstreamCall, handle: UpstreamHandle) -> None:
        self._handles[_key(call.index, call.provider, call.upstream)] = RecordedHandle(
            index=call.index,
            provider=call.provider,
            upstream=call.upstream,
            request_id=handle.request_id,
            state=handle.state,
        )
        try:
            await self._store.save_progress(self._owner, self._job_id, self.handles)
        except (OSError, SQLAlchemyError) as exc:
            # The call goes on; only a restart before it ends would submit it again.
            log.warning("job %s: could not record its upstream job: %s", self._job_id, error_summary(exc))
