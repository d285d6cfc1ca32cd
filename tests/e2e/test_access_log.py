"""The access log records hosted-image requests without the link's signature.

A signed link works for anyone holding it until it expires, so its ``sig`` is a credential: the
log line a real uvicorn server writes for the download must keep the path and status but not it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import openai
import pytest

from tests.live import LiveGateway


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def access_lines() -> Iterator[list[str]]:
    logger = logging.getLogger("uvicorn.access")
    handler, level = _Lines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler.lines
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_downloaded_link_is_logged_without_its_signature(
    client: openai.OpenAI, gateway: LiveGateway, access_lines: list[str]
) -> None:
    result = client.images.generate(model="sandbox-generate", prompt="p", size="64x64", response_format="url")
    assert result.data and result.data[0].url
    url = result.data[0].url
    sig = parse_qs(urlsplit(url).query)["sig"][0]
    assert httpx.get(url, timeout=10).status_code == 200
    downloads = [line for line in access_lines if urlsplit(url).path in line]
    assert downloads, f"no access line for the download among {access_lines}"
    assert all("sig=[redacted]" in line and " 200" in line for line in downloads)
    assert not any(sig in line for line in access_lines)
