"""Several byte strings in one database value: the input images of a job, or its result images.

The layout is a 4-byte count, an 8-byte length per part (big-endian), then the parts in order. It
is private to pixelgate's jobs table and read only by :func:`unpack`.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

_COUNT = struct.Struct(">I")
_LENGTH = struct.Struct(">Q")


def pack(parts: Sequence[bytes]) -> bytes:
    """``parts`` as one value; :func:`unpack` gives them back."""
    header = _COUNT.pack(len(parts)) + b"".join(_LENGTH.pack(len(part)) for part in parts)
    return header + b"".join(parts)


def unpack(blob: bytes) -> list[bytes]:
    """The parts :func:`pack` joined. Raises ``ValueError`` for a value it did not make."""
    if len(blob) < _COUNT.size:
        raise ValueError("not a packed value: too short")
    (count,) = _COUNT.unpack_from(blob, 0)
    offset = _COUNT.size + count * _LENGTH.size
    if offset > len(blob):
        raise ValueError("not a packed value: truncated header")
    lengths = [_LENGTH.unpack_from(blob, _COUNT.size + i * _LENGTH.size)[0] for i in range(count)]
    if offset + sum(lengths) != len(blob):
        raise ValueError("not a packed value: its parts do not add up to its length")
    parts: list[bytes] = []
    for length in lengths:
        parts.append(blob[offset : offset + length])
        offset += length
    return parts
