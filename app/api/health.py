"""``/healthz`` (the process answers) and ``/readyz`` (storage writable, configuration usable; admission load)."""

from __future__ import annotations

import asyncio
import os
import secrets
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from app.deps import AppStateDep
from app.handlers import json_response

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
async def readyz(state: AppStateDep) -> Response:
    """Ready when the catalog has models, the data dir and the image store can be written.

    ``checks.image_store`` is the store's write probe (reused for a few seconds) and turns false for
    as long after a result the store failed to save; ``image_store_problem`` says why.
    """
    checks: dict[str, Any] = {"catalog": len(state.catalog.entries()) > 0}
    checks["storage"] = await asyncio.to_thread(_storage_writable, state.settings.data_dir)
    store = await state.host.health()
    checks["image_store"] = store.writable
    ready = all(checks.values())
    gate = state.admission
    load = {
        "inflight": gate.inflight,
        "queued": gate.queued,
        "max_inflight": gate.limits.max_inflight,
        "intake_bytes": gate.intake_bytes,
    }
    body: dict[str, Any] = {"status": "ready" if ready else "not_ready", "checks": checks, "admission": load}
    if store.problem is not None:
        body["image_store_problem"] = store.problem
    return json_response(body, 200 if ready else 503)


def _storage_writable(data_dir: os.PathLike[str]) -> bool:
    probe = os.path.join(data_dir, f".ready-{secrets.token_hex(4)}")
    try:
        with open(probe, "wb") as handle:
            handle.write(b"ok")
        os.remove(probe)
    except OSError:
        return False
    return True
