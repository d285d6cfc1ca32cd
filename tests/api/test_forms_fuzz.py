"""Fuzzing the streaming multipart parser (``app/forms.py``) with hypothesis.

Bodies are built from random parts (the names the SDKs use, bracketed names, junk names, with and
without filenames), then optionally mutated (bytes flipped, inserted, deleted, the body cut short)
and fed in random chunk sizes. Whatever arrives, the parser either returns a form that respects
every limit or raises our 400/413 errors; nothing else escapes. Unmutated bodies round-trip.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from app.forms import MAX_FIELD_BYTES, MAX_PARTS, FormLimits, ParsedForm, read_multipart
from core.errors import InvalidRequestError, PayloadTooLargeError

BOUNDARY = "fuzzBoundary7MA4YWxkTrZu0gW"
LIMITS = FormLimits(max_file_bytes=300, max_request_bytes=4000, max_images=3)

part_names = st.sampled_from(
    [
        *("image", "image[]", "image[0]", "image[12]", "mask", "mask[]", "prompt", "model", "n", "size", "tags[]"),
        *("extra[key]", "extra[]", "weird name", "é", "", "image[x]", 'q"uote', "a\r\nb"),
    ]
) | st.text(min_size=0, max_size=12)


@dataclass(frozen=True)
class Part:
    name: str
    data: bytes
    filename: str | None


parts = st.builds(
    Part,
    name=part_names,
    data=st.binary(max_size=400) | st.text(max_size=60).map(str.encode),
    filename=st.none() | st.sampled_from(["a.png", "", "x\x00y", "../../etc/passwd"]),
)


def encode(body_parts: list[Part], boundary: str = BOUNDARY) -> bytes:
    out = bytearray()
    for part in body_parts:
        disposition = f'form-data; name="{part.name}"'
        if part.filename is not None:
            disposition += f'; filename="{part.filename}"'
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode(errors="surrogatepass")
        if part.filename is not None:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + part.data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out)


@st.composite
def mutated(draw: st.DrawFn, body: bytes) -> bytes:
    data = bytearray(body)
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "cut", "dup"]))
        position = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[position] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[position:position] = draw(st.sampled_from([b"\r\n", b"--", BOUNDARY.encode(), b"\r\n\r\n", b"\x00"]))
        elif kind == "delete":
            del data[position : position + draw(st.integers(1, 8))]
        elif kind == "cut":
            del data[position:]
        elif kind == "dup":
            data[position:position] = data[position : position + draw(st.integers(1, 64))]
    return bytes(data)


async def _chunks(body: bytes, sizes: list[int]) -> AsyncIterator[bytes]:
    position, index = 0, 0
    while position < len(body):
        size = sizes[index % len(sizes)] if sizes else len(body)
        yield body[position : position + size]
        position += size
        index += 1


def parse(body: bytes, sizes: list[int], content_type: str = f"multipart/form-data; boundary={BOUNDARY}") -> ParsedForm:
    return asyncio.run(read_multipart(content_type, _chunks(body, sizes), LIMITS))


def assert_within_limits(form: ParsedForm, body: bytes) -> None:
    assert len(body) <= LIMITS.max_request_bytes
    assert len(form.images) <= LIMITS.max_images
    assert all(len(b"".join(pieces)) <= LIMITS.max_file_bytes for _, pieces in form.images)
    assert form.mask is None or len(b"".join(form.mask[1])) <= LIMITS.max_file_bytes
    assert len(form.fields) + len(form.images) <= MAX_PARTS
    for value in form.fields.values():
        values = value if isinstance(value, list) else list(value.values()) if isinstance(value, dict) else [value]
        assert all(isinstance(v, str) and len(v.encode()) <= MAX_FIELD_BYTES for v in values)


chunk_sizes = st.lists(st.integers(1, 700), max_size=5)
fuzz_settings = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fuzz_settings
@given(body_parts=st.lists(parts, max_size=8), sizes=chunk_sizes, data=st.data())
@example(body_parts=[Part("image", b"x" * 301, "a.png")], sizes=[], data=None)  # one byte over the file cap
def test_mutated_bodies_give_a_form_within_limits_or_our_error(
    body_parts: list[Part], sizes: list[int], data: st.DataObject | None
) -> None:
    body = encode(body_parts)
    if data is not None:
        body = data.draw(mutated(body))
    try:
        form = parse(body, sizes)
    except (InvalidRequestError, PayloadTooLargeError) as exc:
        assert exc.status_code in (400, 413)
        assert exc.message
        return
    assert_within_limits(form, body)


@fuzz_settings
@given(body=st.binary(max_size=5000), sizes=chunk_sizes)
def test_arbitrary_bytes_never_escape_as_anything_else(body: bytes, sizes: list[int]) -> None:
    try:
        form = parse(body, sizes)
    except (InvalidRequestError, PayloadTooLargeError):
        return
    assert_within_limits(form, body)


header_text = st.text(st.characters(max_codepoint=255), max_size=80)
"""Starlette decodes header values as latin-1, so no header holds a character above U+00FF."""


@settings(max_examples=200, deadline=None)
@given(
    prefix=st.sampled_from(["", "multipart/form-data;", "multipart/form-data; boundary="]),
    rest=header_text,
    body=st.binary(max_size=200),
)
def test_arbitrary_content_type_headers(prefix: str, rest: str, body: bytes) -> None:
    content_type = prefix + rest
    try:
        form = parse(body, [], content_type=content_type)
    except (InvalidRequestError, PayloadTooLargeError) as exc:
        assert exc.status_code in (400, 413)
        return
    assert_within_limits(form, body)


file_parts = st.builds(
    Part,
    name=st.sampled_from(["image", "image[]", "image[0]", "mask"]),
    data=st.binary(max_size=250),
    filename=st.just("f.bin"),
)
scalar_parts = st.builds(
    Part,
    name=st.sampled_from(["prompt", "model", "tags[]", "extra[key]"]),
    data=st.text(max_size=40).map(lambda text: text.encode("utf-8", "surrogatepass")),
    filename=st.none(),
)
clean_parts = file_parts | scalar_parts


@fuzz_settings
@given(body_parts=st.lists(clean_parts, max_size=6), sizes=chunk_sizes)
def test_well_formed_bodies_round_trip(body_parts: list[Part], sizes: list[int]) -> None:
    images = [p.data for p in body_parts if p.name.startswith("image")]
    masks = [p.data for p in body_parts if p.name == "mask"]
    body = encode(body_parts)
    try:
        form = parse(body, sizes)
    except PayloadTooLargeError:
        assert len(body) > LIMITS.max_request_bytes
        return
    except InvalidRequestError as exc:
        # Only these rules can refuse a well-formed body of these names.
        assert len(images) > LIMITS.max_images or len(masks) > 1 or "UTF-8" in exc.message, exc.message
        return
    assert [b"".join(pieces) for _, pieces in form.images] == images
    joined_mask = None if form.mask is None else (form.mask[0], b"".join(form.mask[1]))
    assert joined_mask == (("mask", masks[0]) if masks else None)
    for part in body_parts:
        if part.name == "prompt":
            last_prompt = part.data.decode()
    if any(part.name == "prompt" for part in body_parts):
        assert form.fields["prompt"] == last_prompt
    tags = [part.data.decode() for part in body_parts if part.name == "tags[]"]
    assert form.fields.get("tags", []) == tags
