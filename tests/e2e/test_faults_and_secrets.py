"""Upstream faults end to end, and the secrets they must never leak.

The official SDK drives a live gateway in front of both fakes (fal and OpenAI-compatible), whose
keys and signing secret are distinctive strings. The OpenAI-side faults are new here (the fal ones
have their own e2e tests in ``test_fal_e2e.py``): a connection reset mid-body, HTML instead of
JSON (200 and an nginx 502 page), a truncated image. Then every fault of both fakes is injected
once more and everything a client or an operator could read (error bodies, headers, every log
record, the server's stdout/stderr) is searched for the secrets. Signed links are HMAC-SHA256 of
name and expiry under the signing secret, names carry 192 random bits, and no crafted name, even
correctly signed, reaches a file outside the image store.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import openai
import orjson
import pytest

from normalization.hosting.signing import LinkSigner
from tests.conftest import TEST_KEY, upstream_settings
from tests.fakes.fake_fal import FakeFal
from tests.fakes.fake_openai import FakeOpenAI, FakeOpenAIServer, result_png
from tests.live import LiveGateway

FAL_KEY = "falkeyid-LEAKCHECK-3e1f:falsecret-LEAKCHECK-90ab77"
OPENAI_KEY = "sk-openai-LEAKCHECK-5d2c8e41"
SIGNING_SECRET = "signing-LEAKCHECK-0f9e8d7c6b5a"
SECRETS = (FAL_KEY, *FAL_KEY.split(":"), OPENAI_KEY, SIGNING_SECRET)


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[FakeFal, FakeOpenAIServer]]:
    with FakeFal(api_key=FAL_KEY, latency=0.02) as fal, FakeOpenAIServer(FakeOpenAI()) as upstream:
        yield fal, upstream


@pytest.fixture(scope="module")
def live(
    upstreams: tuple[FakeFal, FakeOpenAIServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveGateway]:
    fal, upstream = upstreams
    conf = upstream_settings(
        tmp_path_factory.mktemp("leaks"),
        fal=fal,
        fal_key=FAL_KEY,
        openai_server=upstream,
        openai_key=OPENAI_KEY,
        max_retries=1,
        signing_secret=SIGNING_SECRET,
        request_timeout_seconds=10,
    )
    with LiveGateway(conf) as gateway:
        yield gateway


@pytest.fixture
def fake_openai(upstreams: tuple[FakeFal, FakeOpenAIServer]) -> Iterator[FakeOpenAI]:
    app = upstreams[1].app
    app.reset()
    yield app
    app.reset()


@pytest.fixture
def sdk(live: LiveGateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=live.api_url, api_key=TEST_KEY, max_retries=0, timeout=30) as client:
        yield client


def _failure(sdk: openai.OpenAI, model: str = "gpt-image-1", prompt: str = "x") -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.images.generate(model=model, prompt=prompt, size="1024x1024", response_format="b64_json")
    body = caught.value.response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return caught.value


# --- OpenAI-compatible upstream faults ----------------------------------------------------------


def test_openai_reset_mid_body_once_is_retried(sdk: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    fake_openai.reset_next()
    result = sdk.images.generate(model="gpt-image-1", prompt="x", response_format="b64_json")
    assert result.data is not None and base64.b64decode(result.data[0].b64_json or "") == result_png()
    assert len(fake_openai.requests) == 2


def test_openai_reset_mid_body_every_time_is_a_502(sdk: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    fake_openai.reset_next(times=2)
    error = _failure(sdk)
    assert (error.status_code, error.code) == (502, "upstream_unreachable")
    assert len(fake_openai.requests) == 2


@pytest.mark.parametrize(
    ("status", "attempts", "code"),
    [(200, 1, "upstream_bad_response"), (502, 2, "upstream_error"), (503, 2, "upstream_error")],
)
def test_openai_html_instead_of_json(
    sdk: openai.OpenAI, fake_openai: FakeOpenAI, status: int, attempts: int, code: str
) -> None:
    html = b"<html><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>"
    fake_openai.answer_next(status, html, headers={"content-type": "text/html"}, times=attempts)
    error = _failure(sdk)
    assert (error.status_code, error.code) == (502, code)
    assert "nginx" not in error.response.text
    assert len(fake_openai.requests) == attempts


def test_openai_truncated_image_is_a_bad_response(sdk: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    cut = base64.b64encode(result_png()[: len(result_png()) // 2]).decode()
    fake_openai.answer_next(200, orjson.dumps({"created": 1, "data": [{"b64_json": cut}]}))
    error = _failure(sdk)
    assert (error.status_code, error.code) == (502, "upstream_bad_response")


# --- no secret anywhere -------------------------------------------------------------------------

FAL_MARKERS = (
    "429_always:0",
    "500",
    "503_always",
    "reset_always",
    "401",
    "422",
    "content_policy",
    "html",
    "echo_auth",
    "completed_error",
    "malformed",
    "result_html",
    "truncated",
    "not_image",
    "private_url",
)


OPENAI_FAULTS = ("reset", "html", "truncated", "echo_key_401", "echo_key_400", "quota", "timeout")


def _script(app: FakeOpenAI, fault: str) -> None:
    if fault == "reset":
        app.reset_next(times=2)
    elif fault == "html":
        app.answer_next(200, b"<html>oops</html>", headers={"content-type": "text/html"})
    elif fault == "truncated":
        app.answer_next(200, orjson.dumps({"created": 1, "data": [{"b64_json": "iVBORw0KGgoAAAANSUhEUgAA"}]}))
    elif fault == "echo_key_401":
        app.fail_next(401, message=f"Incorrect API key provided: {OPENAI_KEY}", code="invalid_api_key")
    elif fault == "echo_key_400":
        app.fail_next(400, message=f"key {OPENAI_KEY} may not use size", param="size", code="invalid_value")
    elif fault == "quota":
        app.fail_next(429, message=f"quota of {OPENAI_KEY} exhausted", error_type="insufficient_quota")
    elif fault == "timeout":
        app.fail_next(504, message=f"timeout for {OPENAI_KEY}", times=2)


def test_no_fault_leaks_a_secret(
    live: LiveGateway,
    upstreams: tuple[FakeFal, FakeOpenAIServer],
    fake_openai: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("pixelgate", "httpx", "httpcore", "uvicorn", "uvicorn.error", "uvicorn.access"):
        caplog.set_level(logging.DEBUG, logger=name)
    headers = {"Authorization": f"Bearer {TEST_KEY}"}
    seen: list[str] = []

    def record(response: httpx.Response) -> None:
        seen.append(f"{response.status_code} {dict(response.headers)} {response.text}")

    with httpx.Client(base_url=live.api_url, headers=headers, timeout=30) as client:
        for marker in FAL_MARKERS:
            for model in ("hidream-i1-full", "hidream-e1-1"):
                body: dict[str, object] = {"model": model, "prompt": f"p [fake:{marker}]", "response_format": "url"}
                if model == "hidream-e1-1":
                    png = base64.b64encode(result_png()[:100]).decode()  # not an image: a 400 before fal
                    body["images"] = [{"image_url": f"data:image/png;base64,{png}"}]
                    record(client.post("/images/edits", json=body))
                else:
                    record(client.post("/images/generations", json=body))
        for fault in OPENAI_FAULTS:
            _script(fake_openai, fault)
            record(client.post("/images/generations", json={"model": "gpt-image-1", "prompt": "p"}))
        record(
            client.post(
                "/images/generations", json={"model": "gpt-image-1"}, headers={"Authorization": "Bearer " + OPENAI_KEY}
            )
        )
    statuses = [int(text.split(" ", 1)[0]) for text in seen]
    assert {400, 401, 502, 504} <= set(statuses)
    out, err = capfd.readouterr()
    everything = "\n".join([*seen, caplog.text, out, err])
    assert caplog.records, "the gateway logged nothing: the search would prove nothing"
    for secret in SECRETS:
        assert secret not in everything


# --- signed links and the image store ------------------------------------------------------------


def test_links_are_hmac_sha256_of_name_and_expiry_with_192_random_bits(sdk: openai.OpenAI, live: LiveGateway) -> None:
    result = sdk.images.generate(model="sandbox-generate", prompt="p", size="64x64", n=4, response_format="url")
    assert result.data is not None
    names = set()
    for image in result.data:
        assert image.url is not None
        parts = urlsplit(image.url)
        name = parts.path.rsplit("/", 1)[-1]
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        digest = hmac.new(SIGNING_SECRET.encode(), f"{name}\n{query['expires']}".encode(), hashlib.sha256).digest()
        assert query["sig"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        stem = name.split(".")[0]
        assert len(stem) == 32 and len(base64.urlsafe_b64decode(stem)) == 24  # 192 bits
        names.add(stem)
        forged = LinkSigner(b"another-secret-of-enough-length").sign(name, int(query["expires"]))
        assert httpx.get(f"{live.base_url}{parts.path}", params={**query, "sig": forged}).status_code == 403
    assert len(names) == 4


CRAFTED = (
    "..%2f..%2fsigning.key",
    "..%2F..%2Fsecret.txt",
    "%252e%252e%252fsecret.txt",
    "%2e%2e%5c%2e%2e%5csecret.txt",
    "..%5csecret.txt",
    "%c0%ae%c0%ae%c0%afsecret.txt",
    "%2fetc%2fpasswd",
    "%2Fetc%2Fhostname",
    "secret.txt%00.png",
    "%00",
    "..",
    ".",
    "images",
    "~",
)


@pytest.mark.parametrize("crafted", CRAFTED)
def test_no_crafted_name_reaches_a_file_even_correctly_signed(live: LiveGateway, crafted: str) -> None:
    data_dir: Path = live.settings.data_dir
    (data_dir / "secret.txt").write_text("PLANTED-SECRET")
    signer = LinkSigner(SIGNING_SECRET.encode())
    for path_name, signed_name in ((crafted, crafted), (crafted, unquote(crafted))):
        response = httpx.get(
            f"{live.base_url}/v1/images/{path_name}",
            params={"expires": 9_999_999_999, "sig": signer.sign(signed_name, 9_999_999_999)},
        )
        assert response.status_code in (403, 404), response.text
        assert "PLANTED" not in response.text and "root:" not in response.text
        if response.status_code != 404:
            continue
        assert response.json()["error"]["type"] == "invalid_request_error"
