"""Replicate's prediction protocol: create (on the right route), wait until terminal, cancel.

**The route comes from the catalog's ``upstream``** (the Replicate reference, section 2):

- ``owner/name``: an official model, ``POST {base}/models/{owner}/{name}/predictions`` with ``{input}``;
- ``owner/name:VERSION`` or a bare ``VERSION`` id: a community model (``prunaai/hidream-e1.1``) or a
  pinned version, ``POST {base}/predictions`` with ``{version, input}``, ``version`` sent as written.

**Waiting.** A create asks ``Prefer: wait=N`` (``wait_seconds``; none when 0), so a fast model
answers in the create. A waited answer can still be ``starting`` (the wait ran out) or
``processing`` with its output already set (section 3), so :meth:`Predictions.wait` polls
``urls.get`` until ``succeeded``, ``failed``, ``canceled`` or ``aborted``; a prediction that stays
``processing`` is followed as long as the caller waits (the request deadline ends it). Polls are due
at fixed offsets (0.1, 0.3, 0.7, 1.5 s ... doubling up to ``poll_max_seconds`` apart), not after each
answer, so a slow answer does not delay the next poll.

**Deadline.** ``cancel_after_seconds`` is sent as ``Cancel-After`` (Replicate's own deadline from
creation, at least 5 s): the request deadline, past which nobody waits for the prediction. The
gateway cancels its predictions itself when it gives up; this header ends one it could not cancel.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict, JsonValue

from core.errors import GatewayError
from providers.replicate.errors import bad_response, parse_model
from providers.replicate.transport import ReplicateHttp
from providers.toolkit.retry import RetryPolicy

Status = Literal["starting", "processing", "succeeded", "failed", "canceled", "aborted"]
TERMINAL: frozenset[Status] = frozenset({"succeeded", "failed", "canceled", "aborted"})
MIN_CANCEL_AFTER_SECONDS = 5
"""Replicate's shortest ``Cancel-After`` (its OpenAPI description)."""

_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
_OFFICIAL = re.compile(rf"^{_NAME}/{_NAME}$")
_VERSIONED = re.compile(rf"^(?:{_NAME}/{_NAME}:)?[A-Za-z0-9]{{32,128}}$")


class PredictionUrls(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    get: str
    cancel: str


class Prediction(BaseModel):
    """The part of Replicate's prediction object the adapter reads (section 4)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    status: Status
    input: dict[str, JsonValue] | None = None
    output: JsonValue = None
    error: JsonValue = None
    data_removed: bool = False
    deadline: str | None = None
    urls: PredictionUrls

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def error_text(self) -> str | None:
        return None if self.error is None else str(self.error)


@dataclass(frozen=True)
class CreateRoute:
    """Where the create for a catalog ``upstream`` goes, and the ``version`` it names (version route)."""

    path: str
    version: str | None

    def body(self, model_input: dict[str, JsonValue]) -> dict[str, JsonValue]:
        if self.version is None:
            return {"input": model_input}
        return {"version": self.version, "input": model_input}


def route_of(upstream: str) -> CreateRoute:
    """The create route for ``upstream`` (see the module docstring); ``GatewayError`` for any other form."""
    if _OFFICIAL.match(upstream):
        return CreateRoute(path=f"models/{upstream}/predictions", version=None)
    if _VERSIONED.match(upstream):
        return CreateRoute(path="predictions", version=upstream)
    # A catalog mistake, not the client's: a 500 that names the entry's value.
    raise GatewayError(
        f"the Replicate upstream '{upstream}' is neither 'owner/name' (an official model) nor "
        "'owner/name:version' (a model version)"
    )


@dataclass
class Predictions:
    """One Replicate account's predictions. Every method raises ``core.errors`` (see :mod:`.errors`)."""

    http: ReplicateHttp
    create_retry: RetryPolicy
    poll_retry: RetryPolicy
    wait_seconds: int = 5
    cancel_after_seconds: int | None = None
    min_cancel_after_seconds: int = MIN_CANCEL_AFTER_SECONDS
    poll_initial_seconds: float = 0.1
    poll_max_seconds: float = 1.0

    def _create_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.wait_seconds > 0:
            headers["Prefer"] = f"wait={self.wait_seconds}"
        if self.cancel_after_seconds is not None:
            headers["Cancel-After"] = f"{max(self.min_cancel_after_seconds, self.cancel_after_seconds)}s"
        return headers

    def _checked(self, prediction: Prediction, what: str) -> Prediction:
        if not (self.http.same_origin(prediction.urls.get) and self.http.same_origin(prediction.urls.cancel)):
            raise bad_response(f"{what} (prediction URLs on another host)")
        return prediction

    async def create(self, upstream: str, model_input: dict[str, JsonValue]) -> Prediction:
        """Create a prediction of ``upstream`` for ``model_input``; answers after at most ``wait_seconds``."""
        route = route_of(upstream)
        # The read timeout counts after the wait the create asked the server to hold it for.
        read = self.http.timeout.read
        timeout = httpx.Timeout(None if read is None else read + self.wait_seconds, connect=self.http.timeout.connect)
        response = await self.http.send(
            "POST",
            f"{self.http.base_url}/{route.path}",
            phase="create",
            retry=self.create_retry,
            upstream=upstream,
            json=route.body(model_input),
            headers=self._create_headers(),
            timeout=timeout,
        )
        return self._checked(parse_model(response, Prediction, "create response"), "create response")

    async def get(self, prediction: Prediction) -> Prediction:
        response = await self.http.send("GET", prediction.urls.get, phase="poll", retry=self.poll_retry)
        latest = parse_model(response, Prediction, "prediction")
        if latest.id != prediction.id:
            raise bad_response("prediction (another prediction's id)")
        return self._checked(latest, "prediction")

    async def wait(self, prediction: Prediction) -> Prediction:
        """``prediction`` once terminal (polled until then; see the module docstring)."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        delay = self.poll_initial_seconds
        while not prediction.terminal:
            # A poll overdue after a stall goes out at once; the schedule restarts from it.
            due = max(due + delay, loop.time())
            await asyncio.sleep(due - loop.time())
            prediction = await self.get(prediction)
            delay = min(self.poll_max_seconds, delay * 2)
        return prediction

    async def cancel(self, prediction: Prediction) -> None:
        """Ask Replicate to stop ``prediction``: best effort, one try, never raises (except cancellation)."""
        try:
            await self.http.client.post(
                prediction.urls.cancel, headers=self.http.auth_headers, timeout=self.http.timeout
            )
        except httpx.HTTPError:
            return
