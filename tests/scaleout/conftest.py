"""Fixtures of the multi-replica tests: one SeaweedFS per module, each test under its own key prefix."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.scaleout.seaweed import SeaweedS3, seaweed_s3


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    with seaweed_s3(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture
def s3_prefix() -> str:
    """A key prefix no other test uses (the bucket is shared by the module's tests)."""
    return f"test-{uuid.uuid4().hex[:10]}/"
