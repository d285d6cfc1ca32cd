"""What a plan is: the upstream calls, the emulation to do after them, and what the client is told.

:func:`normalization.engine.plan_request` makes a :class:`Plan`; the pipeline executes it; the
response metadata and ``?dry_run=true`` show it. Frozen data only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict

from core.images import FormatName
from normalization.catalog import Behavior, Mode, ModelEntry
from providers.base import UpstreamCall

ResponseFormat = Literal["url", "b64_json"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ParamHandling(_Frozen):
    """How one sent parameter was handled: shown in the response ``metadata.parameters``."""

    behavior: Behavior
    upstream: str | None = None
    note: str | None = None


WarningCode = Literal["parameter_ignored", "unsupported_parameter", "image_store_unavailable"]


class ParamWarning(_Frozen):
    """Something the client asked for and did not get as asked; the request was still served.

    On the wire: ``message`` is one entry of ``metadata.warnings`` and of the ``x-pixelgate-warnings``
    header. ``param`` is the parameter as the client spelled it (None when none is to blame).
    """

    param: str | None
    code: WarningCode
    message: str


class EmulationPlan(_Frozen):
    """What pixelgate does itself after the upstream answers, in the order it does it.

    ``n`` images are collected from the calls (count fan-out); each is fitted to ``target`` when set
    (exact size) and written as ``output_format`` with ``output_compression`` (output format); then
    returned as ``response_format`` (inline, or hosted behind a link). ``url_fallback``: the client
    allowed inline images should the image store fail to take them.
    """

    n: int
    response_format: ResponseFormat
    url_fallback: bool = False
    output_format: FormatName
    output_compression: int | None
    target: tuple[int, int] | None
    native_format: bool


class Plan(_Frozen):
    """Everything needed to serve one request, decided before any upstream call."""

    entry: ModelEntry
    mode: Mode
    calls: tuple[UpstreamCall, ...]
    emulation: EmulationPlan
    parameters: Mapping[str, ParamHandling]
    warnings: tuple[ParamWarning, ...]

    def client_param(self, upstream_field: str | None) -> str | None:
        """The client's name for an upstream field (to word upstream validation errors)."""
        if upstream_field is None:
            return None
        return upstream_to_client(self.entry).get(upstream_field, upstream_field)


def upstream_to_client(entry: ModelEntry) -> dict[str, str]:
    """Every upstream field the catalog maps for ``entry``, with the client parameter that sets it."""
    names: dict[str, str] = {}
    for client, spec in entry.params.items():
        names[spec.upstream or client] = client
    if entry.images:
        names[entry.images.field] = "image"
        if entry.images.mask_field:
            names[entry.images.mask_field] = "mask"
    if entry.size.field:
        names[entry.size.field] = "size"
    if entry.size.kind == "dimensions" and entry.size.encoding == "fields":
        names[entry.size.width_field] = "size"
        names[entry.size.height_field] = "size"
    if entry.size.tier_field:
        names[entry.size.tier_field] = "resolution"
    if entry.count.field:
        names[entry.count.field] = "n"
    if entry.output_format.field:
        names[entry.output_format.field] = "output_format"
    if entry.prompt_field:
        names[entry.prompt_field] = "prompt"
    return names
