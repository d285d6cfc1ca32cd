"""Fixtures for provider tests: the fake OpenAI upstream on loopback, reset before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.fake_openai import FakeOpenAI, FakeOpenAIServer


@pytest.fixture(scope="module")
def openai_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(FakeOpenAI()) as server:
        yield server


@pytest.fixture
def fake_openai(openai_server: FakeOpenAIServer) -> Iterator[FakeOpenAIServer]:
    openai_server.app.result = "b64_json"
    openai_server.app.revised_prompt = None
    openai_server.app.url_host = None
    openai_server.app.reset()
    yield openai_server
    openai_server.app.reset()
