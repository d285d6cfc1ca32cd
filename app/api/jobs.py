"""``GET`` and ``DELETE /v1/images/jobs/{id}``, and the 202 that answers ``Prefer: respond-async``.

Thin: the work is :class:`app.jobs.service.Jobs`. The image routes hand a request that asked to
run as a job to :func:`accept` after planning it (so a bad request is still a 400 at once, not a
failed job), instead of executing it.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.auth import PrincipalDep
from app.context import RequestContext
from app.deps import AppState, AppStateDep
from app.handlers import json_response
from app.jobs.intake import RESPOND_ASYNC, AsyncIntake
from app.jobs.models import JobRequest
from core.errors import AuthenticationError
from normalization.request import EditInputs
from normalization.routing.route import Route

router = APIRouter()


async def accept(
    state: AppState,
    context: RequestContext,
    intake: AsyncIntake,
    route: Route,
    inputs: EditInputs | None,
    base_url: str,
    *,
    strict: bool,
    url_fallback: bool,
) -> Response:
    """Store the planned request as a queued job of the request's principal; 202 with the job,
    ``Location`` to poll it."""
    if context.principal is None:  # the image routes require one; a job must belong to a key
        raise AuthenticationError("async jobs need an API key")
    request = JobRequest.of(
        intake.request,
        route.mode,
        inputs,
        strict=strict,
        url_fallback=url_fallback,
        base_url=base_url,
        response_format=route.primary.emulation.response_format,
    )
    job = await state.jobs.submit(
        key_id=context.principal.key_id,
        model=route.model.id,
        request=request,
        inputs=inputs,
        webhook_url=intake.webhook_url,
    )
    headers = {"location": f"/v1/images/jobs/{job['id']}", "preference-applied": RESPOND_ASYNC}
    return json_response(job, status_code=202, headers=headers)


@router.get("/v1/images/jobs/{job_id}", response_model=None)
async def get_job(job_id: str, request: Request, state: AppStateDep, principal: PrincipalDep) -> Response:
    """The job; once completed with ``result`` (the synchronous answer), once failed with ``error``."""
    return json_response(await state.jobs.show(job_id, principal.key_id, str(request.base_url)))


@router.delete("/v1/images/jobs/{job_id}", response_model=None)
async def cancel_job(job_id: str, request: Request, state: AppStateDep, principal: PrincipalDep) -> Response:
    """Cancel a queued or running job (and its upstream job); a finished job is answered unchanged."""
    return json_response(await state.jobs.cancel(job_id, principal.key_id, str(request.base_url)))
