"""The typed shapes of async jobs: what is stored to replay a request, a job as read back, its wire object.

A job is stored as the request needs to be replayed (:class:`JobRequest`: the parsed fields, the
switches and the input images' types; the image bytes beside it) and, once it ran, as the answer a
synchronous call would have given, without its image bytes (kept beside it too, see
:mod:`app.jobs.results`). Times are integer milliseconds since the Unix epoch in the database and
seconds on the wire.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from core.images import ImageMediaType, InputImage
from normalization.catalog import Mode
from normalization.plan import ResponseFormat
from normalization.request import EditInputs, ImageRequest

JobStatus = Literal["queued", "in_progress", "completed", "failed", "cancelled"]
UNFINISHED: tuple[JobStatus, ...] = ("queued", "in_progress")
FINISHED: tuple[JobStatus, ...] = ("completed", "failed", "cancelled")
WebhookStatus = Literal["pending", "delivered", "failed"]

_ID = re.compile(r"job_[0-9a-f]{24}")


def new_job_id() -> str:
    """A new job id: ``job_`` and 96 random bits in hex (unguessable, though ids are no credential)."""
    return "job_" + secrets.token_hex(12)


def now_ms() -> int:
    """The wall clock in milliseconds, as the job store keeps times."""
    return int(time.time() * 1000)


def is_job_id(text: str) -> bool:
    """Whether ``text`` can be a job id; anything else is answered 404 without asking the database."""
    return _ID.fullmatch(text) is not None


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class InputInfo(_Frozen):
    """One input image of a stored request, minus its bytes (those are packed beside the request)."""

    media_type: ImageMediaType
    width: int
    height: int


class JobRequest(_Frozen):
    """Everything that replays a request through the gateway, except the image bytes.

    ``fields`` are the request's fields as the client set them (``webhook_url`` removed);
    ``response_format`` is the one the synchronous answer would have had (the client's, or the
    default the plan chose); ``base_url`` is where hosted links point.
    """

    mode: Mode
    fields: dict[str, JsonValue]
    strict: bool = False
    url_fallback: bool = False
    base_url: str
    response_format: ResponseFormat
    images: tuple[InputInfo, ...] = ()
    mask: InputInfo | None = None

    @classmethod
    def of(
        cls,
        request: ImageRequest,
        mode: Mode,
        inputs: EditInputs | None,
        *,
        strict: bool,
        url_fallback: bool,
        base_url: str,
        response_format: ResponseFormat,
    ) -> JobRequest:
        def info(image: InputImage) -> InputInfo:
            return InputInfo(media_type=image.media_type, width=image.width, height=image.height)

        return cls(
            mode=mode,
            fields=request.model_dump(mode="json", exclude_unset=True),
            strict=strict,
            url_fallback=url_fallback,
            base_url=base_url,
            response_format=response_format,
            images=tuple(info(image) for image in inputs.images) if inputs else (),
            mask=info(inputs.mask) if inputs and inputs.mask else None,
        )

    def image_request(self) -> ImageRequest:
        return ImageRequest.model_validate(self.fields)

    def input_parts(self, inputs: EditInputs | None) -> list[bytes]:
        """The bytes to store beside this request: the images in order, then the mask."""
        if inputs is None:
            return []
        return [image.data for image in inputs.images] + ([inputs.mask.data] if inputs.mask else [])

    def edit_inputs(self, parts: list[bytes]) -> EditInputs | None:
        """The inputs again from the parts :meth:`input_parts` stored (None for a generation)."""
        if self.mode != "edit":
            return None
        expected = len(self.images) + (1 if self.mask else 0)
        if len(parts) != expected:
            raise ValueError(f"a stored job has {len(parts)} input images where {expected} were recorded")

        def image(info: InputInfo, data: bytes) -> InputImage:
            return InputImage(data=data, media_type=info.media_type, width=info.width, height=info.height)

        images = tuple(image(info, data) for info, data in zip(self.images, parts, strict=False))
        mask = image(self.mask, parts[-1]) if self.mask else None
        return EditInputs(images=images, mask=mask)


class ResultLinks(_Frozen):
    """The hosted copies of a ``url`` result's images (their names in the image store) and until when
    links to them are signed (Unix seconds; the copies live at least that long). The links are made
    from these on each read, for the base URL the reader used."""

    names: tuple[str, ...]
    expires: int


class RecordedHandle(_Frozen):
    """An upstream job recorded for one call of a job (see :class:`app.jobs.tracking.JobTracker`)."""

    index: int
    provider: str
    upstream: str
    request_id: str
    state: dict[str, str] = Field(default_factory=dict)


@dataclass(frozen=True)
class JobRow:
    """A job as the API shows it, read without its image bytes."""

    id: str
    key_id: str
    model: str
    status: JobStatus
    request: JobRequest
    created_ms: int
    started_ms: int | None = None
    finished_ms: int | None = None
    expires_ms: int | None = None
    result: dict[str, JsonValue] | None = None
    result_links: ResultLinks | None = None
    error: dict[str, JsonValue] | None = None
    webhook_url: str | None = None
    webhook_status: WebhookStatus | None = None
    webhook_attempts: int = 0


@dataclass(frozen=True)
class ClaimedJob:
    """A job this process has just taken to run: its request, input bytes and recorded upstream jobs."""

    id: str
    key_id: str
    model: str
    request: JobRequest
    inputs: list[bytes]
    handles: tuple[RecordedHandle, ...]
    created_ms: int
    runs: int


def job_object(row: JobRow, result: dict[str, JsonValue] | None) -> dict[str, JsonValue]:
    """The job on the wire (GET, DELETE, the webhook body); ``result`` is the rendered answer, if any."""

    def seconds(ms: int | None) -> int | None:
        return None if ms is None else ms // 1000

    body: dict[str, JsonValue] = {
        "id": row.id,
        "object": "image.job",
        "status": row.status,
        "created": row.created_ms // 1000,
        "model": row.model,
        "started_at": seconds(row.started_ms),
        "finished_at": seconds(row.finished_ms),
        "expires_at": seconds(row.expires_ms),
    }
    if row.status == "completed" and result is not None:
        body["result"] = result
    if row.status == "failed" and row.error is not None:
        body["error"] = row.error
    if row.webhook_url is not None:
        body["webhook"] = {"status": row.webhook_status, "attempts": row.webhook_attempts}
    return body
