"""Fixtures for the end-to-end modules against fal: one fake fal per module, reset for every test.

A module that uses ``sdk`` defines ``fal_gateway``: its own live gateway (its own settings) on
``fal_server``. Tests take ``fake``, the same server with its records and scenarios cleared.
"""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.conftest import TEST_KEY
from tests.fakes.fake_fal import FakeFal
from tests.live import LiveGateway

FAL_KEY = "e2e-fal-key-id:e2e-fal-secret-9f8e7d"
LATENCY = 0.05


@pytest.fixture(scope="module")
def fal_server() -> Iterator[FakeFal]:
    with FakeFal(api_key=FAL_KEY, latency=LATENCY) as server:
        yield server


@pytest.fixture
def fake(fal_server: FakeFal) -> FakeFal:
    """The module's fake fal, as new: no submissions, scenario ``ok``, the default latency."""
    fal_server.reset()
    fal_server.latency = LATENCY
    return fal_server


@pytest.fixture
def sdk(fal_gateway: LiveGateway, fake: FakeFal) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fal_gateway.api_url, api_key=TEST_KEY, max_retries=0, timeout=30) as client:
        yield client
