"""The public request: lenient, OpenAI-named, and keeping every field it does not know.

Both endpoints build one :class:`ImageRequest` (multipart scalars arrive as strings and are coerced
here by type; JSON ``null`` means absent). Unknown fields stay in ``model_extra`` so the engine can
pass them through or report them explicitly. Input images travel beside it as
:class:`~providers.base.InputImage` values, never inside it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

from core.images import FormatName, InputImage

STANDARD_FIELDS: frozenset[str] = frozenset(
    {
        "model",
        "prompt",
        "n",
        "size",
        "aspect_ratio",
        "resolution",
        "response_format",
        "output_format",
        "output_compression",
        "seed",
        "negative_prompt",
        "cfg_scale",
        "quality",
        "background",
        "input_fidelity",
        "moderation",
        "style",
        "user",
        "stream",
        "partial_images",
    }
)
"""Fields with a fixed meaning in pixelgate, whatever the model (the contract's request parameters)."""


class ImageRequest(BaseModel):
    """An edit or generation request as the client sent it (minus images).

    Validation here is only what holds for every model (types, ``n`` 1-10, known enums); ranges
    that depend on the model are checked by the engine against the model's table.
    """

    model_config = ConfigDict(extra="allow", str_strip_whitespace=False)

    model: str | None = None
    prompt: str | None = None
    n: int | None = Field(default=None, ge=1, le=10)
    size: str | None = None
    aspect_ratio: str | None = None
    resolution: str | None = None
    response_format: Literal["url", "b64_json"] | None = None
    output_format: FormatName | None = None
    output_compression: int | None = Field(default=None, ge=0, le=100)
    seed: int | None = None
    negative_prompt: str | None = None
    cfg_scale: float | None = None
    quality: str | None = None
    background: str | None = None
    input_fidelity: str | None = None
    moderation: str | None = None
    style: str | None = None
    user: str | None = None
    stream: bool | None = None
    partial_images: int | None = Field(default=None, ge=0, le=3)
    """OpenAI's range (``PartialImages``): how many partial images a stream sends before the final one."""

    @field_validator("output_format", mode="before")
    @classmethod
    def _jpg_is_jpeg(cls, value: object) -> object:
        if isinstance(value, str) and value.lower() in ("jpg", "jpeg"):
            return "jpeg"
        return value.lower() if isinstance(value, str) else value

    def sent_fields(self) -> dict[str, JsonValue]:
        """Every field the client actually sent (standard and extra), by the client's name."""
        sent: dict[str, JsonValue] = {}
        for name in self.model_fields_set:
            value = getattr(self, name)
            if value is not None:
                sent[name] = value
        for name, value in (self.model_extra or {}).items():
            if value is not None:
                sent[name] = value
        return sent


class EditInputs(BaseModel):
    """The images of an edit, in the client's order, and the optional mask."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    images: tuple[InputImage, ...]
    mask: InputImage | None = None
