"""The provider adapter interface and the frozen models that cross it.

The normalization engine turns a client request into one or more :class:`UpstreamCall` (payload
already translated by the catalog; images still bytes), and an adapter turns one call into a
:class:`ProviderResult` (checked images, as bytes or as the upstream's base64 text, never URLs).
Adapters know their protocol only: where to send, how to authenticate, poll, retry, upload inputs
and download results. They never emulate (``n`` fan-out, format conversion, resizing and hosting
live in ``normalization/``).

Failure contract: an adapter raises :mod:`core.errors` exceptions only, having mapped its client
library's exceptions in one place. On ``asyncio.CancelledError`` (client gone, deadline passed,
sibling call failed) it releases upstream work it started (e.g. fal's cancel) and re-raises.

Resumption (async jobs that outlive a restart): :meth:`ImageAdapter.run_tracked` is ``run`` with an
:class:`UpstreamTracker` beside it. An adapter whose upstream jobs can be followed again (a fal
request id, a Replicate prediction id) overrides it: it reports the job's :class:`UpstreamHandle`
through ``tracker.started`` as soon as the upstream has accepted it (before waiting for the
result), follows ``tracker.previous(call)`` instead of submitting when a handle was recorded before
a restart, and leaves the upstream job running when cancelled while ``tracker.detaching`` (the
process is stopping and another process will follow the job). The default runs ``run`` and reports
nothing: the call is simply made again after a restart, which suits adapters whose calls are
synchronous or free (the sandbox, an OpenAI-compatible upstream that answers in one request).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from core.errors import ProviderNotConfiguredError
from core.image_payload import ImagePayload
from core.image_workers import ImageWorkers
from core.images import InputImage

MiB = 1024 * 1024

JsonObject = dict[str, JsonValue]
"""A JSON object as sent on the wire to an upstream (already translated field names and types)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class UpstreamCall(_Frozen):
    """One request to one upstream, ready for its adapter.

    ``payload`` holds every translated field except the images; the adapter places ``images`` (and
    ``mask``) under ``image_field``/``mask_field`` in its protocol's way (fal: URL strings or a
    list of them; OpenAI: multipart files). ``index`` is the call's position in a fan-out.
    """

    model_id: str
    provider: str
    upstream: str
    mode: Literal["edit", "generate"]
    payload: JsonObject
    images: tuple[InputImage, ...] = ()
    image_field: str | None = None
    image_kind: Literal["single", "list"] = "single"
    mask: InputImage | None = None
    mask_field: str | None = None
    result_field: str = "images"
    expected_images: int = Field(default=1, ge=1, description="how many images this call should return")
    index: int = 0
    partial_images: int = Field(
        default=0,
        ge=0,
        le=3,
        description="partial images (previews) to stream before the final ones; set by the engine only for a "
        "streamed request to a deployment whose table lists partial_images (see ImageAdapter.run_streaming)",
    )


class GeneratedImage(ImagePayload):
    """One result image, with what the upstream said about it.

    The image is held as it arrived (see :class:`~core.image_payload.ImagePayload`): ``data=`` bytes
    (a download) or ``b64=`` text (a base64 answer), with the ``header`` its check read; ``.data``
    gives the bytes either way (decoding base64 text on first use).
    """

    seed: int | None = None
    revised_prompt: str | None = None
    nsfw: bool | None = None

    @classmethod
    def of(
        cls,
        image: ImagePayload,
        *,
        seed: int | None = None,
        revised_prompt: str | None = None,
        nsfw: bool | None = None,
    ) -> GeneratedImage:
        """A checked image (a :class:`~providers.toolkit.results.ResultReader`'s) with its metadata."""
        return cls(
            data=image.raw, b64=image.b64, header=image.header, seed=seed, revised_prompt=revised_prompt, nsfw=nsfw
        )


class ProviderResult(_Frozen):
    images: tuple[GeneratedImage, ...]
    upstream_request_id: str | None = None


class PartialImage(_Frozen):
    """A preview an upstream streamed while it made a call's images (OpenAI's ``*.partial_image`` event).

    Passed on as the upstream sent it: ``b64_json`` is not decoded or checked here (it is a preview,
    re-encoded by the client's JSON reader anyway); ``size`` and ``output_format`` are the upstream's
    words when it said them. ``index`` is the upstream's ``partial_image_index`` (0-based, per call);
    ``call`` the :attr:`UpstreamCall.index` it belongs to.
    """

    b64_json: str = Field(repr=False)
    index: int = Field(ge=0)
    call: int = 0
    size: str | None = None
    output_format: str | None = None


OnPartial = Callable[[PartialImage], None]
"""Told each partial image as it arrives. Must not block or raise (it hands the preview to a queue)."""


class UpstreamHandle(_Frozen):
    """The upstream job behind one call, as its adapter reports it: enough to follow it again later.

    ``request_id`` is the upstream's own id (fal's request id, a Replicate prediction id); ``state``
    holds whatever else the adapter needs to follow it (fal: its status, response and cancel URLs).
    It is stored in the gateway's database as JSON: never put a credential in it.
    """

    request_id: str
    state: dict[str, str] = Field(default_factory=dict)


class UpstreamTracker(ABC):
    """Where an adapter reports the upstream jobs of one request, and finds those of an earlier run.

    One tracker serves every call of a request; calls are told apart by ``call.index``,
    ``call.provider`` and ``call.upstream``, so a handle recorded for one deployment is never
    offered to another.
    """

    detaching: bool = False
    """True while the request is being stopped so that another process can resume it: an adapter that
    is cancelled then leaves its upstream job running (it is not cancelled upstream)."""

    @abstractmethod
    def previous(self, call: UpstreamCall) -> UpstreamHandle | None:
        """The handle recorded for ``call`` by an earlier run of the same request, if any."""

    @abstractmethod
    async def started(self, call: UpstreamCall, handle: UpstreamHandle) -> None:
        """Record that the upstream accepted ``call`` as ``handle``. Never raises (a failure to record
        is logged: the call then runs on, and is made again should the process stop)."""

    async def finished(self, call: UpstreamCall) -> None:  # noqa: B027 - optional hook
        """``call``'s upstream job is done and its results are about to be fetched: returns once the
        gateway has room to take them (meanwhile they wait upstream, so a burst of completions does
        not fill memory). Raises nothing but a cancellation. Default: at once."""


class ImageAdapter(ABC):
    """One provider kind's protocol. One instance per configured provider, built at start-up."""

    reports_acceptance: bool = False
    """Whether :meth:`run_tracked` tells its tracker ``started`` as soon as the upstream holds the call's
    inputs (a queue's submit), long before the result: the gateway then stops counting the inputs as
    waiting to be sent. An adapter whose upstream takes the inputs and answers in one call leaves it
    False."""

    @abstractmethod
    async def run(self, call: UpstreamCall) -> ProviderResult:
        """Send ``call`` upstream and return its images, checked (see :mod:`providers.result_check`).

        Raises :class:`core.errors.GatewayError` subclasses only: ``ProviderNotConfiguredError``
        without credentials, ``InvalidRequestError`` (with the upstream field in ``param``; the
        engine maps it back to the client's name), ``ModerationBlockedError``, ``UpstreamError``,
        ``UpstreamTimeoutError``. Retries retryable failures itself before raising.
        """

    async def run_tracked(self, call: UpstreamCall, tracker: UpstreamTracker) -> ProviderResult:
        """:meth:`run`, reporting the upstream job to ``tracker`` and resuming one it recorded.

        See the module docstring. This default makes the call again after a restart and reports
        nothing; an adapter whose upstream jobs outlive the request overrides it.
        """
        return await self.run(call)

    async def run_streaming(self, call: UpstreamCall, on_partial: OnPartial) -> ProviderResult:
        """:meth:`run`, telling ``on_partial`` each partial image the upstream streams before the result.

        Asked for when the client streams (``stream=true``); ``call.partial_images`` says how many
        partials the client wants (0: none, and an adapter may then simply :meth:`run`). This default
        runs :meth:`run` and sends no partials: only an adapter whose upstream streams them overrides
        it. Same failures and cancellation as :meth:`run`; a failure may come after some partials
        were sent (they were previews, and stay sent).
        """
        return await self.run(call)

    async def aclose(self) -> None:  # noqa: B027 - optional hook; most adapters own nothing
        """Release resources the adapter owns (not the shared HTTP client). Default: nothing."""


@dataclass(frozen=True)
class ResultLimits:
    """Caps every upstream result must stay within; the app passes its settings' values."""

    max_pixels: int = 64_000_000
    max_bytes: int = 50 * MiB


@dataclass(frozen=True)
class AdapterContext:
    """What every adapter shares, made once in the app's lifespan: the HTTP client, the Pillow pool, the result caps."""

    client: httpx.AsyncClient
    image_workers: ImageWorkers
    """The one bounded pool where all Pillow work runs: an adapter that decodes or draws images (the
    offline sandbox) does it there, never in threads of its own."""
    limits: ResultLimits = field(default_factory=ResultLimits)
    call_deadline_seconds: float | None = None
    """The longest one upstream call can still matter: the app's request deadline (a call never starts
    before its request). An adapter may hand it to its upstream as a server-side deadline (Replicate's
    ``Cancel-After``), so a job the gateway can no longer cancel (its process died) ends anyway.
    None: no deadline to hand on."""


def adapter_for(adapters: Mapping[str, ImageAdapter], provider: str) -> ImageAdapter:
    """The adapter serving ``provider``; 503 ``provider_not_configured`` when there is none."""
    adapter = adapters.get(provider)
    if adapter is None:
        raise ProviderNotConfiguredError(f"provider {provider!r} is not configured on this gateway")
    return adapter
