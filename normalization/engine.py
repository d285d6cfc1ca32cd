"""The rule engine: (request, catalog entry) -> upstream calls and an emulation plan.

Every parameter the client sent ends up in exactly one of the four behaviors (or ``unsupported``),
and the :class:`Plan` records which, for the response metadata and ``GET /v1/models/{id}``:

- structural standard parameters (``image``, ``mask``, ``n``, ``size``, ``aspect_ratio``,
  ``resolution``, ``output_format``, ``output_compression``, ``response_format``, ``prompt``) are
  derived from the entry's structural specs;
- parameters with a row in the entry's table are typed and range-checked, then sent under their
  name (passthrough) or the upstream's (renamed); a row may also mark them unsupported;
- standard OpenAI parameters the model has no row for (``quality``, ``background``, ...) are
  dropped with a warning, or refused under strict mode;
- anything else passes straight through, untyped.

Pass-through is for the model's own fields that its table does not list: a field that the
translation itself sets (the image, mask, size, count, format and prompt fields, every row's upstream
name) or that the entry fixes is a 400 naming it, so a request can never override what pixelgate
decided (``num_images`` beside ``n``, raw ``width`` past the model's maximum).

Each parameter is placed by a :class:`normalization.planner.Planner`; this module orders the placing
and assembles the :class:`Plan`. Pure: no I/O, no clock. Raises
:class:`core.errors.InvalidRequestError` for bad input.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from core.errors import InvalidRequestError
from normalization.catalog import Behavior, Mode, ModelEntry
from normalization.emulation.exact_size import check_output_pixels
from normalization.emulation.fanout import split
from normalization.emulation.response_format import choose_response_format
from normalization.plan import EmulationPlan, ParamHandling, Plan, ResponseFormat
from normalization.planner import Planner
from normalization.request import EditInputs, ImageRequest

SIZE_FIELDS = ("size", "aspect_ratio", "resolution")
DEFAULT_MAX_PROMPT_CHARS = 32_000


class PlanSettings(BaseModel):
    """The gateway's settings that planning depends on (from :class:`app.settings.Settings`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS
    max_pixels: int = 64_000_000
    """Pixels of one image pixelgate makes (an exact size it emulates)."""
    max_request_pixels: int = 256_000_000
    """Pixels of all ``n`` images of one request together."""
    default_response_format: ResponseFormat = "url"


def plan_request(
    request: ImageRequest,
    entry: ModelEntry,
    mode: Mode,
    inputs: EditInputs | None,
    *,
    strict: bool = False,
    url_fallback: bool = False,
    settings: PlanSettings | None = None,
) -> Plan:
    """Translate ``request`` for ``entry``. Raises InvalidRequestError (strict: UnsupportedParameterError).

    ``strict``: a standard parameter the model cannot honor refuses the request instead of being
    dropped with a warning. ``url_fallback``: the client allows inline images should the image
    store fail a ``url`` answer.
    """
    settings = settings or PlanSettings()
    if mode not in entry.modes:
        verb = "edits" if mode == "edit" else "generations"
        raise InvalidRequestError(
            f"model '{entry.id}' does not support {verb}; it supports: {', '.join(entry.modes)}",
            param="model",
            code="unsupported_mode",
        )
    state = Planner(entry, strict)
    sent = request.sent_fields()
    prompt = _prompt(request, settings.max_prompt_chars)
    images = inputs.images if inputs else ()
    mask = inputs.mask if inputs else None
    n = request.n or 1
    state.place_images(images, mask)
    state.place_size(request, images)
    if state.target is not None:
        check_output_pixels(
            state.target, n, max_pixels=settings.max_pixels, max_request_pixels=settings.max_request_pixels
        )
    output_format, native_format = state.place_output_format(request)
    compression = state.place_compression(request, native_format)
    state.handled["response_format"] = ParamHandling(behavior=Behavior.EMULATED, note="done by pixelgate")
    for name, value in sent.items():
        if name in (
            "model",
            "prompt",
            "n",
            "response_format",
            "output_format",
            "output_compression",
            "stream",
            *SIZE_FIELDS,
        ):
            continue
        if name == "partial_images" and request.stream:
            continue  # placed by place_stream
        state.place_param(name, value)
    partial_images = state.place_stream(request)
    state.place_prompt(prompt, sent)
    native_max = entry.count.max if entry.count.field else 1
    if request.seed is not None and state.takes_seed() and not entry.count.seeds_per_image:
        # One image per call: image i is then exactly what seed + i gives with n=1, so every image's
        # reported seed reproduces it (such an upstream's batch reports one seed, not one per image).
        native_max = 1
    chunks = split(n, native_max)
    calls = state.calls(mode, chunks, request.seed, n_sent=request.n is not None, partial_images=partial_images)
    emulation = EmulationPlan(
        n=n,
        response_format=choose_response_format(request.response_format, entry, settings.default_response_format),
        url_fallback=url_fallback,
        output_format=output_format,
        output_compression=compression,
        target=state.target,
        native_format=native_format,
    )
    return Plan(
        entry=entry,
        mode=mode,
        calls=calls,
        emulation=emulation,
        parameters=dict(state.handled),
        warnings=tuple(state.warnings),
    )


def _prompt(request: ImageRequest, max_chars: int) -> str:
    if request.prompt is None or not request.prompt.strip():
        raise InvalidRequestError("'prompt' is required", param="prompt", code="missing_required_parameter")
    if len(request.prompt) > max_chars:
        raise InvalidRequestError(
            f"'prompt' is longer than {max_chars} characters", param="prompt", code="string_above_max_length"
        )
    return request.prompt
