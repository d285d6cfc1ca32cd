"""Parsing of the client's ``size``, ``aspect_ratio`` and ``resolution`` into a :class:`SizeRequest`.

Accepted syntax (case-insensitive, surrounding blanks ignored; ``None``, ``""`` and ``"auto"`` mean
"not given" for all three):

- ``size``: ``WxH`` (``1024x768``, ``1024X768``) or a ratio ``W:H``.
- ``aspect_ratio``: ``W:H``; ``W/H`` is accepted too, since it cannot mean anything else. Sides
  may be decimals (``2.39:1``).
- ``resolution``: ``NK`` with ``N`` K = ``(N*1024)²`` pixels (``0.5K``, ``1K``, ``2K``, ``4K``, and
  any other ``N``), or a megapixel tier ``N`` / ``NMP`` = ``N * 1_000_000`` pixels (``0.25``, ``1``).

Limits: each side of ``WxH`` 1..16384, ratios (and ``WxH`` shapes) within 1:64..64:1, tiers above
zero and at most 16384² pixels. Anything else is an InvalidRequestError naming the field.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

from core.errors import InvalidRequestError

__all__ = [
    "MAX_RATIO",
    "MAX_SIDE",
    "MAX_TIER_PIXELS",
    "SizeRequest",
    "format_ratio",
    "format_size",
    "format_tier",
    "parse_ratio",
    "parse_size_request",
    "parse_tier",
]

MAX_SIDE = 16384
"""Largest accepted side of a ``WxH`` size, in pixels."""
MAX_RATIO = Fraction(64)
"""Ratios (and ``WxH`` shapes) must lie within ``1/MAX_RATIO .. MAX_RATIO``."""
MAX_TIER_PIXELS = MAX_SIDE * MAX_SIDE

_NOT_GIVEN = ("", "auto")
DIMENSIONS_RE = re.compile(r"^(\d{1,6})\s*x\s*(\d{1,6})$", re.IGNORECASE)
RATIO_RE = re.compile(r"^(\d{1,6}(?:\.\d{1,4})?)\s*[:/]\s*(\d{1,6}(?:\.\d{1,4})?)$")
_TIER_RE = re.compile(r"^(\d{1,6}(?:\.\d{1,6})?)\s*(k|mp|m)?$", re.IGNORECASE)
_K_SIDE = 1024
_MEGAPIXEL = 1_000_000


@dataclass(frozen=True, slots=True)
class SizeRequest:
    """What the client asked for, after precedence.

    ``exact`` set means ``size`` was ``WxH``: ``ratio`` and ``tier_pixels`` are then None.
    ``sources`` lists the size parameters the client gave (in the order size, aspect_ratio,
    resolution); ``ignored`` is the subset overridden by ``size`` (the engine warns about them).
    """

    exact: tuple[int, int] | None = None
    ratio: Fraction | None = None
    tier_pixels: int | None = None
    sources: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()

    @property
    def asked(self) -> bool:
        """True when anything about the size was asked for."""
        return self.exact is not None or self.ratio is not None or self.tier_pixels is not None


# --- parsing -----------------------------------------------------------------------------------------


def _given(value: str | None) -> str | None:
    if value is None:
        return None
    text = value.strip()
    return None if text.lower() in _NOT_GIVEN else text


def _invalid(param: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code="invalid_value")


def _check_ratio(ratio: Fraction, text: str, param: str) -> Fraction:
    if not 1 / MAX_RATIO <= ratio <= MAX_RATIO:
        raise _invalid(param, f"{param} {text!r} is too extreme: the ratio must lie between 1:64 and 64:1.")
    return ratio


def parse_ratio(text: str, param: str = "aspect_ratio") -> Fraction:
    """``"16:9"`` or ``"16/9"`` (sides may be decimals) to a Fraction in ``1/64 .. 64``.

    Raises InvalidRequestError(param=param) on bad syntax, a zero side or a too extreme ratio.
    """
    match = RATIO_RE.match(text.strip())
    if match is None:
        raise _invalid(param, f"{param} {text!r} is not a ratio such as '16:9'.")
    width, height = Fraction(match.group(1)), Fraction(match.group(2))
    if width <= 0 or height <= 0:
        raise _invalid(param, f"{param} {text!r} must have two positive sides.")
    return _check_ratio(width / height, text, param)


def parse_tier(text: str, param: str = "resolution") -> int:
    """A resolution tier to a pixel count: ``"2K"`` -> 2048², ``"0.25"`` or ``"0.25MP"`` -> 250 000.

    Raises InvalidRequestError(param=param) on bad syntax, zero, or more than 16384² pixels.
    """
    match = _TIER_RE.match(text.strip())
    if match is None:
        raise _invalid(param, f"{param} {text!r} is not a tier such as '1K', '2K' or a megapixel count like '1'.")
    amount, unit = Fraction(match.group(1)), (match.group(2) or "").lower()
    pixels = round((amount * _K_SIDE) ** 2) if unit == "k" else round(amount * _MEGAPIXEL)
    if pixels <= 0:
        raise _invalid(param, f"{param} {text!r} must be a positive size.")
    if pixels > MAX_TIER_PIXELS:
        raise _invalid(param, f"{param} {text!r} is too large: at most {MAX_SIDE}x{MAX_SIDE} pixels.")
    return pixels


def _parse_dimensions(match: re.Match[str], text: str) -> tuple[int, int]:
    width, height = int(match.group(1)), int(match.group(2))
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise _invalid("size", f"size {text!r}: each side must be between 1 and {MAX_SIDE} pixels.")
    _check_ratio(Fraction(width, height), text, "size")
    return width, height


def parse_size_request(size: str | None, aspect_ratio: str | None, resolution: str | None) -> SizeRequest:
    """The three client size parameters to a :class:`SizeRequest`.

    Precedence (contract, "Size rules"): ``size`` as ``WxH`` wins and makes ``aspect_ratio`` and
    ``resolution`` ignored; ``size`` as ``W:H`` means ``aspect_ratio`` and wins over a different
    ``aspect_ratio``. Ignored parameters are still validated: a malformed value is an error.

    Raises InvalidRequestError whose ``param`` names the offending field.
    """
    size_text, ratio_text, tier_text = _given(size), _given(aspect_ratio), _given(resolution)
    sources = tuple(
        name
        for name, text in (("size", size_text), ("aspect_ratio", ratio_text), ("resolution", tier_text))
        if text is not None
    )
    ratio_param = parse_ratio(ratio_text, "aspect_ratio") if ratio_text is not None else None
    tier = parse_tier(tier_text, "resolution") if tier_text is not None else None
    if size_text is None:
        return SizeRequest(ratio=ratio_param, tier_pixels=tier, sources=sources)

    dimensions = DIMENSIONS_RE.match(size_text)
    if dimensions is not None:
        exact = _parse_dimensions(dimensions, size_text)
        ignored = tuple(name for name in sources if name != "size")
        return SizeRequest(exact=exact, sources=sources, ignored=ignored)
    if RATIO_RE.match(size_text) is None:
        raise _invalid("size", f"size {size_text!r} is not 'WxH' (e.g. '1024x768'), 'W:H' or 'auto'.")
    ratio = parse_ratio(size_text, "size")
    ignored = ("aspect_ratio",) if ratio_param is not None and ratio_param != ratio else ()
    return SizeRequest(ratio=ratio, tier_pixels=tier, sources=sources, ignored=ignored)


def format_ratio(ratio: Fraction) -> str:
    """``Fraction(16, 9)`` -> ``"16:9"`` (parses back to the same Fraction)."""
    return f"{ratio.numerator}:{ratio.denominator}"


def format_size(size: tuple[int, int]) -> str:
    """``(1024, 768)`` -> ``"1024x768"``."""
    return f"{size[0]}x{size[1]}"


def format_tier(pixels: int) -> str:
    side = math.sqrt(pixels)
    if side % (_K_SIDE / 2) == 0:
        return f"{side / _K_SIDE:g}K"
    return f"{pixels / _MEGAPIXEL:g} MP"
