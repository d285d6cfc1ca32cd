"""What routes get injected: the app's state, built once by the lifespan (see :mod:`app.main`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from app.admission import AdmissionGate
from app.idempotency import Idempotency
from app.inputs import UrlFetcher
from app.jobs.service import Jobs
from app.keys.budget import Budgets
from app.settings import Settings
from normalization.catalog import Catalog
from normalization.hosting import ImageHost
from normalization.pipeline import Gateway


@dataclass(frozen=True)
class AppState:
    settings: Settings
    catalog: Catalog
    gateway: Gateway
    host: ImageHost
    fetch_input: UrlFetcher
    idempotency: Idempotency
    admission: AdmissionGate
    budgets: Budgets
    jobs: Jobs


def state_of(request: Request) -> AppState:
    """The app's state, for a route that reads it itself (the image routes: see :mod:`app.api.images`)."""
    state: AppState = request.app.state.pixelgate
    return state


async def get_state(request: Request) -> AppState:
    # async: FastAPI runs a plain ``def`` dependency in its thread pool, a thread hop per request.
    return state_of(request)


AppStateDep = Annotated[AppState, Depends(get_state)]
