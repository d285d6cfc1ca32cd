"""The request bodies an OpenAI-compatible images API expects, built from an :class:`UpstreamCall`.

- Generations: JSON ``{"model": <upstream>, **payload}`` to ``{base}/images/generations``.
- Edits: ``multipart/form-data`` to ``{base}/images/edits``, encoded as the official SDKs do
  (``openai-python`` ``extract_files`` with ``array_format="brackets"``): one input image as a
  file part named ``image``, several as repeated ``image[]`` parts in order, the mask as ``mask``;
  every payload scalar a form string (booleans ``"true"``/``"false"``, ``None`` left out), lists
  as repeated ``key[]`` and objects as ``key[sub]``. File parts carry a real filename and the
  sniffed media type: OpenAI refuses ``application/octet-stream`` parts.

The multipart body (:func:`multipart_body`) is a :class:`ChunkedBody`: the image bytes as they are
(the pieces they arrived in, never copied into a joined buffer), the small pieces between them
joined, sent with an exact ``Content-Length`` and re-sendable as is on a retry.
"""

from __future__ import annotations

import json
import secrets

from pydantic import JsonValue

from core.errors import GatewayError
from core.held_bytes import ByteChunks
from core.images import InputImage
from providers.base import JsonObject, UpstreamCall
from providers.toolkit.chunked_body import ChunkedBody

FormFields = dict[str, str | list[str]]
FilePart = tuple[str, tuple[str, ByteChunks, str]]


def generation_body(call: UpstreamCall) -> JsonObject:
    """The JSON body of a generation: the payload with ``model`` set to the upstream id."""
    return {"model": call.upstream, **{k: v for k, v in call.payload.items() if k != "model"}}


def _scalar(value: JsonValue) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    # Deeper nesting has no form spelling the SDKs agree on; JSON text is the least surprising.
    return json.dumps(value, separators=(",", ":"))


def form_fields(call: UpstreamCall) -> FormFields:
    """The non-file form fields of an edit: ``model`` plus every payload value as strings."""
    fields: FormFields = {"model": call.upstream}
    for key, value in call.payload.items():
        if key == "model":
            continue
        if isinstance(value, list):
            items = [text for item in value if (text := _scalar(item)) is not None]
            if items:
                fields[f"{key}[]"] = items
        elif isinstance(value, dict):
            for sub, item in value.items():
                if (text := _scalar(item)) is not None:
                    fields[f"{key}[{sub}]"] = text
        elif (text := _scalar(value)) is not None:
            fields[key] = text
    return fields


def _file(name: str, filename: str, image: InputImage) -> FilePart:
    return (name, (f"{filename}.{image.extension}", image.chunks, image.media_type))


def file_parts(call: UpstreamCall) -> list[FilePart]:
    """The file parts of an edit: the images under ``image_field`` (``[]`` when several), the mask."""
    if not call.images:
        return []
    if call.image_field is None:
        raise GatewayError(f"model '{call.model_id}' sends images but its catalog entry names no image field")
    name = call.image_field if len(call.images) == 1 else f"{call.image_field}[]"
    parts = [_file(name, f"image-{i}", image) for i, image in enumerate(call.images)]
    if call.mask is not None and call.mask_field is not None:
        parts.append(_file(call.mask_field, "mask", call.mask))
    return parts


def _quote(name: str) -> str:
    # The escaping of the HTML form encoding (as httpx does): a quote or line break cannot end the name.
    return name.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def multipart_body(call: UpstreamCall) -> tuple[ChunkedBody, str]:
    """The whole ``multipart/form-data`` body of an edit and its ``Content-Type`` (with boundary).

    Each image is its own chunks, the pieces it arrived in (:attr:`InputImage.chunks`, never joined);
    the text between two images is joined into one chunk (a write per field part would cost more
    than the copy it saves).
    """
    boundary = secrets.token_hex(16)
    chunks: list[bytes | memoryview] = []
    pending: list[bytes] = []
    for name, value in form_fields(call).items():
        for text in value if isinstance(value, list) else [value]:
            head = f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote(name)}"\r\n\r\n'
            pending += [head.encode(), text.encode(), b"\r\n"]
    for name, (filename, data, media_type) in file_parts(call):
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote(name)}"; '
            f'filename="{_quote(filename)}"\r\nContent-Type: {media_type}\r\n\r\n'
        )
        pending.append(head.encode())
        chunks += [b"".join(pending), *data]
        pending = [b"\r\n"]
    pending.append(f"--{boundary}--\r\n".encode())
    chunks.append(b"".join(pending))
    return ChunkedBody(chunks), f"multipart/form-data; boundary={boundary}"
