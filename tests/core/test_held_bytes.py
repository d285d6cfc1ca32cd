"""HeldBytes: an input's bytes in memory or in a file, read back on use, the file never leaked."""

from __future__ import annotations

import gc
import itertools
from pathlib import Path

import pytest

from core.held_bytes import HeldBytes
from core.images import InputImage

DATA = b"\x89PNG" + bytes(range(256)) * 16


def test_spilled_bytes_leave_memory_and_come_back_on_use(tmp_path: Path) -> None:
    held = HeldBytes(DATA)
    path = held.write_file(tmp_path)
    assert held.spilled_to(path) and not held.in_memory and held.spills == 1
    assert path.read_bytes() == DATA
    assert held.data == DATA and held.in_memory and held.sync_reloads == 1
    assert held.drop_memory() and not held.in_memory  # the file still holds them: no second write
    assert held.read_file() == DATA


def test_pinned_bytes_stay_in_memory(tmp_path: Path) -> None:
    held = HeldBytes(DATA)
    held.pins = 1
    assert not held.spilled_to(held.write_file(tmp_path))
    assert held.in_memory and not held.drop_memory()


def test_a_second_file_for_the_same_bytes_is_removed(tmp_path: Path) -> None:
    held = HeldBytes(DATA)
    held.pins = 1
    first = held.write_file(tmp_path)
    held.spilled_to(first)
    held.pins = 0
    second = held.write_file(tmp_path)
    assert held.spilled_to(second)
    assert held.path == first and not second.exists()


def test_discard_hands_back_the_file_and_forgets_the_bytes(tmp_path: Path) -> None:
    held = HeldBytes(DATA)
    held.spilled_to(held.write_file(tmp_path))
    path = held.discard()
    assert path is not None and path.exists()  # the caller removes it, off the event loop
    path.unlink()
    with pytest.raises(RuntimeError):
        _ = held.data


def test_a_holder_that_is_collected_removes_its_file(tmp_path: Path) -> None:
    held = HeldBytes(DATA)
    held.spilled_to(held.write_file(tmp_path))
    del held
    gc.collect()
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        HeldBytes(DATA).write_file(tmp_path / "missing")
    assert list(tmp_path.iterdir()) == []


def test_input_image_copies_share_one_holder(tmp_path: Path) -> None:
    image = InputImage(data=DATA, media_type="image/png", width=1, height=1)
    copy = image.model_copy()
    assert copy.held is image.held and copy == image and "data" not in repr(image)
    image.held.spilled_to(image.held.write_file(tmp_path))
    assert not copy.held.in_memory and copy.data == DATA


def test_forgotten_bytes_are_gone_for_good(tmp_path: Path) -> None:
    held = HeldBytes(b"abc")
    held.pins = 1
    assert not held.forget()  # an attempt still sends them
    held.pins = 0
    assert held.forget() and not held.in_memory and held.spills == 1
    with pytest.raises(RuntimeError, match="forgotten"):
        _ = held.data
    spilled = HeldBytes(b"abc")
    spilled.spilled_to(spilled.write_file(tmp_path))
    assert not spilled.forget()  # a file holds them: a later attempt reads it back


def _pieces(data: bytes, *cuts: int) -> tuple[memoryview, ...]:
    view = memoryview(data)
    edges = [0, *cuts, len(data)]
    return tuple(view[start:end] for start, end in itertools.pairwise(edges))


def test_pieces_are_handed_on_unjoined_and_joined_once_on_demand() -> None:
    pieces = _pieces(DATA, 3, 1000, 1001)
    held = HeldBytes(pieces)
    assert held.size == len(DATA) and held.in_memory
    assert held.chunks is pieces  # the very pieces: no copy
    joined = held.data
    assert joined == DATA and held.data is joined  # joined once, then kept
    assert held.chunks == (joined,)


def test_pieces_spill_to_a_file_whole_and_forget_drops_them(tmp_path: Path) -> None:
    held = HeldBytes(_pieces(DATA, 7, 2000))
    path = held.write_file(tmp_path)
    assert path.read_bytes() == DATA
    assert held.spilled_to(path) and not held.in_memory
    assert held.chunks == (DATA,) and held.sync_reloads == 1  # read back as one buffer
    forgotten = HeldBytes(_pieces(DATA, 5))
    assert forgotten.forget() and not forgotten.in_memory
    with pytest.raises(RuntimeError):
        _ = forgotten.data
