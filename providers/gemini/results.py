"""A ``generateContent`` answer to :class:`GeneratedImage` results, or the refusal it is.

The answer (the Gemini reference, sections 4 and 4.1) is always HTTP 200, images or not:

- ``promptFeedback.blockReason`` set: the prompt was blocked -> 400 ``moderation_blocked``;
- the first candidate's non-thought ``inlineData`` image parts are the result (``thought: true``
  parts are the model's drafts and are dropped); when there are more than the call expects, the last
  ones are kept (the final image comes last);
- no image and a ``finishReason`` of a content policy (``SAFETY``, ``IMAGE_SAFETY``,
  ``PROHIBITED_CONTENT``, ``IMAGE_PROHIBITED_CONTENT``, ``BLOCKLIST``, ``SPII``, ``RECITATION``,
  ``IMAGE_RECITATION``) -> 400 ``moderation_blocked`` with the model's own refusal text;
- no image otherwise (``NO_IMAGE``, ``IMAGE_OTHER``, ``STOP`` with text only, no candidate) -> 502
  ``upstream_no_image``: never a 200 without images.

Images are base64, never URLs; each is checked by the toolkit's :class:`ResultReader` (type, end
marker, pixel cap, from the text's ends) whatever ``mimeType`` says, and kept as its text. Gemini
reports no seed (its ``seed`` is best effort), so none is reported.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from providers.base import GeneratedImage
from providers.gemini.errors import bad_response, no_image, refused
from providers.toolkit.results import ResultReader

POLICY_REASONS = frozenset(
    {
        "SAFETY",
        "IMAGE_SAFETY",
        "PROHIBITED_CONTENT",
        "IMAGE_PROHIBITED_CONTENT",
        "BLOCKLIST",
        "SPII",
        "RECITATION",
        "IMAGE_RECITATION",
    }
)


class _Blob(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    mime_type: str = Field(default="", alias="mimeType")
    data: str = ""


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    text: str | None = None
    inline_data: _Blob | None = Field(default=None, alias="inlineData")
    thought: bool = False


class _Content(BaseModel):
    model_config = ConfigDict(extra="ignore")

    parts: list[_Part] = []


class _Candidate(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    content: _Content | None = None
    finish_reason: str | None = Field(default=None, alias="finishReason")


class _PromptFeedback(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    block_reason: str | None = Field(default=None, alias="blockReason")
    block_reason_message: str | None = Field(default=None, alias="blockReasonMessage")


class Answer(BaseModel):
    """The part of a ``GenerateContentResponse`` the adapter reads."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    candidates: list[_Candidate] = []
    prompt_feedback: _PromptFeedback | None = Field(default=None, alias="promptFeedback")
    response_id: str | None = Field(default=None, alias="responseId")


def parse_answer(content: bytes) -> Answer:
    """A 200 body as an answer; ``upstream_bad_response`` when it is not one (cut, not JSON...)."""
    try:
        return Answer.model_validate_json(content)
    except ValidationError as exc:
        raise bad_response("response") from exc


def collect_images(
    reader: ResultReader, answer: Answer, *, expected: int, secret: str | None
) -> tuple[GeneratedImage, ...]:
    """The images of ``answer`` (see the module docstring); raises the refusal or no-image error."""
    feedback = answer.prompt_feedback
    if feedback is not None and feedback.block_reason:
        raise refused(feedback.block_reason, feedback.block_reason_message, secret)
    if not answer.candidates:
        raise no_image(None)
    candidate = answer.candidates[0]
    parts = [part for part in (candidate.content.parts if candidate.content else []) if not part.thought]
    blobs = [part.inline_data for part in parts if part.inline_data is not None and part.inline_data.data]
    if not blobs:
        reason = candidate.finish_reason
        if reason in POLICY_REASONS:
            text = " ".join(part.text.strip() for part in parts if part.text and part.text.strip())
            raise refused(reason, text or None, secret)
        raise no_image(reason)
    return tuple(GeneratedImage.of(reader.from_base64(blob.data)) for blob in blobs[-expected:])
