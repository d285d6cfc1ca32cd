"""Where each of a request's parameters goes for one catalog entry: :class:`Planner`.

:func:`normalization.engine.plan_request` drives it, one ``place_*`` call per kind of parameter
(see the engine's docstring for the four behaviors), then :meth:`Planner.calls` builds the upstream
calls. The planner accumulates the payload, the handled-parameter report and the warnings; it raises
:class:`core.errors.InvalidRequestError` for a parameter the model refuses (strict:
:class:`core.errors.UnsupportedParameterError`). Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import JsonValue

from core.errors import InvalidRequestError, UnsupportedParameterError
from core.images import FormatName, InputImage
from normalization.catalog import Behavior, Mode, ModelEntry, ParamSpec
from normalization.coerce import coerce_value
from normalization.plan import ParamHandling, ParamWarning, upstream_to_client
from normalization.request import EditInputs, ImageRequest
from normalization.sizes import parse_size_request, resolve_size
from providers.base import JsonObject, UpstreamCall

OPENAI_ONLY_FIELDS = frozenset(
    {"quality", "background", "input_fidelity", "moderation", "style", "user", "partial_images"}
)
"""Standard OpenAI parameters that only some models can honor: a warning when a model has no row."""
CONTRACT_TABLE_FIELDS = frozenset({"negative_prompt", "seed", "cfg_scale"})
"""Contract parameters that a model honors only through a row of its table."""


class Planner:
    """Accumulates the payload, the handled-parameter report and warnings for one plan."""

    def __init__(self, entry: ModelEntry, strict: bool) -> None:
        self.entry = entry
        self.strict = strict
        self.payload: JsonObject = {}
        self.handled: dict[str, ParamHandling] = {}
        self.warnings: list[ParamWarning] = []
        self.edit: EditInputs | None = None
        self.target: tuple[int, int] | None = None
        self._by_upstream = {spec.upstream: name for name, spec in entry.params.items() if spec.upstream}
        self._mapped = upstream_to_client(entry)
        self._row_senders: dict[str, str] = {}

    def unsupported(self, name: str, why: str) -> None:
        if self.strict:
            raise UnsupportedParameterError(
                f"'{name}' is not supported by model '{self.entry.id}' ({why}); the request was refused because "
                "x-pixelgate-strict is set (without it, the parameter is dropped with a warning)",
                param=name,
            )
        message = f"'{name}' is not supported by model '{self.entry.id}' and was ignored: {why}"
        self.warnings.append(ParamWarning(param=name, code="unsupported_parameter", message=message))
        self.handled[name] = ParamHandling(behavior=Behavior.UNSUPPORTED, note=why)

    def place_images(self, images: tuple[InputImage, ...], mask: InputImage | None) -> None:
        spec = self.entry.images
        if spec is None or not images:
            return
        if len(images) > spec.max_images:
            raise InvalidRequestError(
                f"model '{self.entry.id}' accepts at most {spec.max_images} input image(s); got {len(images)}",
                param="image",
                code="too_many_images",
            )
        behavior = Behavior.RENAMED if spec.kind == "single" else Behavior.CONVERTED
        note = "sent as one image" if spec.kind == "single" else "sent as a list of images"
        self.handled["image"] = ParamHandling(behavior=behavior, upstream=spec.field, note=note)
        self.edit = EditInputs(images=images, mask=None)
        if mask is not None:
            if spec.mask_field is None:
                self.unsupported("mask", "the model takes no mask")
            else:
                self.edit = EditInputs(images=images, mask=mask)
                self.handled["mask"] = ParamHandling(behavior=Behavior.RENAMED, upstream=spec.mask_field)

    def place_size(self, request: ImageRequest, images: tuple[InputImage, ...]) -> None:
        size_request = parse_size_request(request.size, request.aspect_ratio, request.resolution)
        input_size = (images[0].width, images[0].height) if images else None
        decision = resolve_size(size_request, self.entry.size, input_size)
        self.payload.update(decision.fields)
        self.target = decision.target
        spec = self.entry.size
        for name, behavior in decision.behaviors.items():
            note = "; ".join(decision.notes) or None
            # A native resolution tier goes to its own field (seedream's size), as the model's table says.
            tiered = name == "resolution" and spec.tier_field is not None and behavior is Behavior.CONVERTED
            upstream = spec.tier_field if tiered else spec.field  # None: no size field (kind none, or two fields)
            self.handled[name] = ParamHandling(behavior=behavior, upstream=upstream, note=note)
        for param, note in decision.ignored:
            self.warnings.append(ParamWarning(param=param, code="parameter_ignored", message=note))

    def place_output_format(self, request: ImageRequest) -> tuple[FormatName, bool]:
        spec = self.entry.output_format
        wanted: FormatName = request.output_format or "png"
        # A compression our encoder must apply means re-encoding anyway: a lossy native result
        # (fal's jpeg) would then be compressed twice, so a lossless png is asked for instead.
        reencode_lossy = request.output_compression is not None and not self._native_compression() and wanted != "png"
        if spec.field and wanted in spec.values and not (reencode_lossy and "png" in spec.values):
            self.payload[spec.field] = wanted
            if request.output_format is not None:
                behavior = Behavior.PASSTHROUGH if spec.field == "output_format" else Behavior.RENAMED
                self.handled["output_format"] = ParamHandling(behavior=behavior, upstream=spec.field)
            return wanted, True
        if not spec.field and spec.default == wanted:
            return wanted, True
        if spec.field and "png" in spec.values:
            # Ask for a lossless source so our conversion loses nothing twice.
            self.payload[spec.field] = "png"
        if request.output_format is not None:
            note = (
                "converted by pixelgate from the model's png, to apply output_compression once"
                if wanted in spec.values
                else f"converted by pixelgate; the model makes {', '.join(spec.values)}"
            )
            self.handled["output_format"] = ParamHandling(behavior=Behavior.EMULATED, note=note)
        return wanted, False

    def _native_compression(self) -> bool:
        row = self.entry.params.get("output_compression")
        return row is not None and row.behavior not in (Behavior.UNSUPPORTED, Behavior.EMULATED)

    def place_compression(self, request: ImageRequest, native_format: bool) -> int | None:
        if request.output_compression is None:
            return None
        row = self.entry.params.get("output_compression")
        if row is not None and native_format and self._native_compression():
            upstream = row.upstream or "output_compression"
            self.payload[upstream] = coerce_value(request.output_compression, row, "output_compression")
            self.handled["output_compression"] = ParamHandling(behavior=row.behavior, upstream=upstream)
            return None
        self.handled["output_compression"] = ParamHandling(behavior=Behavior.EMULATED, note="applied by our encoder")
        return request.output_compression

    def place_param(self, name: str, value: JsonValue) -> None:
        spec = self.entry.params.get(name)
        client_name = name
        if spec is None and name in self._by_upstream:
            # The client used the upstream's own field name (guidance_scale for cfg_scale).
            client_name = self._by_upstream[name]
            spec = self.entry.params[client_name]
        if spec is not None:
            self._place_row(name, client_name, value, spec)
        elif name in OPENAI_ONLY_FIELDS or name in CONTRACT_TABLE_FIELDS:
            self.unsupported(name, "the model has no such setting")
        else:
            self._refuse_reserved(name)
            self.payload[name] = value
            self.handled[name] = ParamHandling(
                behavior=Behavior.PASSTHROUGH,
                upstream=name,
                note="not in the model's table: sent as received",
            )

    def _place_row(self, sent_name: str, client_name: str, value: JsonValue, spec: ParamSpec) -> None:
        if spec.behavior is Behavior.UNSUPPORTED:
            self.unsupported(sent_name, spec.description or "the model has no such setting")
            return
        if spec.behavior is Behavior.EMULATED:
            self.handled[sent_name] = ParamHandling(behavior=Behavior.EMULATED, note=spec.description or None)
            return
        upstream = spec.upstream or client_name
        earlier = self._row_senders.get(upstream)
        if earlier is not None:
            raise InvalidRequestError(
                f"'{sent_name}' and '{earlier}' both set '{upstream}' of model '{self.entry.id}'; send only one",
                param=sent_name,
                code="conflicting_parameters",
            )
        self._refuse_fixed(sent_name, upstream)
        self._row_senders[upstream] = sent_name
        self.payload[upstream] = coerce_value(value, spec, sent_name)
        behavior = Behavior.PASSTHROUGH if upstream == sent_name else Behavior.RENAMED
        self.handled[sent_name] = ParamHandling(behavior=behavior, upstream=upstream)

    def _refuse_fixed(self, sent_name: str, upstream: str) -> None:
        if upstream in self.entry.fixed:
            raise InvalidRequestError(
                f"'{sent_name}' cannot be set for model '{self.entry.id}': pixelgate always sends "
                f"{upstream}={self.entry.fixed[upstream]!r}",
                param=sent_name,
                code="reserved_parameter",
            )

    def _refuse_reserved(self, name: str) -> None:
        """400 when a pass-through field is one the translation sets (the count, size, image... fields)."""
        self._refuse_fixed(name, name)
        owner = self._mapped.get(name)
        if owner is not None:
            raise InvalidRequestError(
                f"'{name}' is set by pixelgate from '{owner}' for model '{self.entry.id}'; send '{owner}' instead",
                param=name,
                code="reserved_parameter",
            )

    def place_stream(self, request: ImageRequest) -> int:
        """``stream`` and, with it, ``partial_images``: how many partial images each call streams.

        pixelgate answers ``stream`` itself (:mod:`app.api.streaming`), so it is never sent as a
        field. An upstream is asked to stream only for partial images, and only when the model's
        table has a ``partial_images`` row: the catalog's way of saying that the upstream streams
        them (OpenAI's gpt-image models). The value is then also sent as the row says. Without a
        row, a streamed ``partial_images`` is dropped with a warning, under strict mode too (as
        before partial images were passed on): they are previews, and the images the client asked
        for are made all the same. Without ``stream``, ``partial_images`` is an ordinary parameter.
        """
        if not request.stream:
            return 0
        self.handled["stream"] = ParamHandling(
            behavior=Behavior.EMULATED, note="answered as server-sent events by pixelgate"
        )
        wanted = request.partial_images
        if not wanted:  # 0 is OpenAI's default (no partial images): nothing to ask, nothing to warn about
            return 0
        spec = self.entry.params.get("partial_images")
        if spec is not None and spec.behavior in (Behavior.PASSTHROUGH, Behavior.RENAMED):
            self.place_param("partial_images", wanted)
            return wanted
        why = "its upstream streams no partial images; the stream carries the final images only"
        message = f"'partial_images' is not supported by model '{self.entry.id}' and was ignored: {why}"
        self.warnings.append(ParamWarning(param="partial_images", code="unsupported_parameter", message=message))
        self.handled["partial_images"] = ParamHandling(behavior=Behavior.UNSUPPORTED, note=why)
        return 0

    def place_prompt(self, prompt: str, sent: Mapping[str, JsonValue]) -> None:
        field = self.entry.prompt_field
        if field is None:
            return
        text = prompt
        if self.entry.prompt_template:
            values = {key: "" if value is None else str(value) for key, value in sent.items()}
            values["prompt"] = prompt
            text = self.entry.prompt_template.format_map(_Blank(values))
        self.payload[field] = text
        behavior = Behavior.PASSTHROUGH if field == "prompt" and not self.entry.prompt_template else Behavior.RENAMED
        self.handled["prompt"] = ParamHandling(behavior=behavior, upstream=field)

    def calls(
        self, mode: Mode, chunks: list[int], seed: int | None, *, n_sent: bool, partial_images: int = 0
    ) -> tuple[UpstreamCall, ...]:
        count = self.entry.count
        if n_sent or len(chunks) > 1:
            if count.field and len(chunks) == 1:
                self.handled["n"] = ParamHandling(behavior=Behavior.CONVERTED, upstream=count.field)
            elif count.field:
                self.handled["n"] = ParamHandling(
                    behavior=Behavior.EMULATED,
                    upstream=count.field,
                    note=f"{len(chunks)} parallel calls of at most {max(chunks)} ({'+'.join(map(str, chunks))})",
                )
            else:
                self.handled["n"] = ParamHandling(behavior=Behavior.EMULATED, note=f"{len(chunks)} parallel calls")
        seed_field = self._seed_field()
        result: list[UpstreamCall] = []
        offset = 0
        for index, chunk in enumerate(chunks):
            payload: JsonObject = {**self.payload, **self.entry.fixed}
            if count.field and (n_sent or chunk > 1):
                payload[count.field] = chunk
            if seed is not None and seed_field is not None:
                # Deterministic per-call seeds: call k starts where the images before it ended.
                payload[seed_field] = seed + offset
            spec = self.entry.images
            result.append(
                UpstreamCall(
                    model_id=self.entry.id,
                    provider=self.entry.provider,
                    upstream=self.entry.upstream,
                    mode=mode,
                    payload=payload,
                    images=self.edit.images if self.edit else (),
                    image_field=spec.field if spec and self.edit else None,
                    image_kind=spec.kind if spec else "single",
                    mask=self.edit.mask if self.edit else None,
                    mask_field=spec.mask_field if spec and self.edit and self.edit.mask else None,
                    result_field=self.entry.result_field,
                    expected_images=chunk,
                    index=index,
                    partial_images=partial_images,
                )
            )
            offset += chunk
        return tuple(result)

    def takes_seed(self) -> bool:
        """Whether the upstream is sent a seed (the model's table passes or renames one)."""
        return self._seed_field() is not None

    def _seed_field(self) -> str | None:
        spec = self.entry.params.get("seed")
        if spec is None or spec.behavior in (Behavior.UNSUPPORTED, Behavior.EMULATED):
            return None
        return spec.upstream or "seed"


class _Blank(dict[str, str]):
    """Template values where a missing placeholder renders empty instead of raising."""

    def __missing__(self, key: str) -> str:
        return ""
