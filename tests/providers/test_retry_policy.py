"""The toolkit's retry loop and the providers' policies as data, in process (httpx.MockTransport)."""

from __future__ import annotations

import dataclasses
import re

import httpx
import pytest
from pydantic import JsonValue

from providers.fal.retry import FAL_RETRY
from providers.openai.retry import OPENAI_RETRY
from providers.toolkit.retry import RetryPolicy, retry_after, retry_after_ms, send_with_retry


def fast(policy: RetryPolicy, attempts: int = 1) -> RetryPolicy:
    """``policy`` with ``attempts`` attempts and millisecond backoff (real decisions, short waits)."""
    return dataclasses.replace(policy, max_attempts=attempts, base_seconds=0.001, cap_seconds=0.002)


def _response(status: int, body: JsonValue = None, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def _quota() -> httpx.Response:
    return _response(429, {"error": {"message": "out of credit", "type": "insufficient_quota", "code": None}})


@pytest.mark.parametrize(
    ("response", "retry"),
    [
        (_response(408), True),
        (_response(409), True),
        (_response(429), True),
        (_response(500), True),
        (_response(503), True),
        (_response(400), False),
        (_response(404), False),
        (_response(500, headers={"x-should-retry": "false"}), False),
        (_response(400, headers={"x-should-retry": "true"}), True),
        (_response(500, headers={"x-should-retry": "maybe"}), True),  # not a flag: the status decides
        (_quota(), False),
        (_response(429, {"error": {"code": "moderation_blocked"}}, {"x-should-retry": "true"}), False),
    ],
)
def test_openai_policy_decisions(response: httpx.Response, retry: bool) -> None:
    assert OPENAI_RETRY.retryable(response) is retry


def test_openai_waits_exactly_what_is_asked_and_gives_up_past_the_cap() -> None:
    policy = fast(OPENAI_RETRY)
    assert policy.wait_after(0, _response(429, headers={"retry-after-ms": "1500", "retry-after": "9"})) == 1.5
    assert policy.wait_after(0, _response(429, headers={"retry-after": "2"})) == 2.0
    assert policy.wait_after(0, _response(429, headers={"retry-after": "3600"})) is None
    assert policy.wait_after(0, _response(503)) == pytest.approx(0.001, rel=0.5)


def test_fal_waits_at_least_its_backoff_and_at_most_the_cap() -> None:
    policy = dataclasses.replace(FAL_RETRY, base_seconds=1.0, cap_seconds=1.0, jitter=(1.0, 1.0))
    assert policy.wait_after(0, _response(429, headers={"retry-after": "0"})) == 1.0  # the floor is the backoff
    assert policy.wait_after(0, _response(429, headers={"retry-after": "7"})) == 7.0
    assert policy.wait_after(0, _response(429, headers={"retry-after": "3600"})) == 30.0


def test_wait_hints_are_read_in_order() -> None:
    both = _response(429, headers={"retry-after-ms": "250", "retry-after": "4"})
    assert retry_after_ms(both) == 0.25 and retry_after(both) == 4.0
    assert retry_after_ms(_response(429, headers={"retry-after-ms": "soon"})) is None
    assert dataclasses.replace(OPENAI_RETRY, wait_hints=(retry_after, retry_after_ms)).asked_wait(both) == 4.0


def _retry_delay(response: httpx.Response) -> float | None:
    """Gemini's ``google.rpc.RetryInfo.retryDelay`` ("37s") in the error body: a body hint, as data."""
    match = re.search(rb'"retryDelay"\s*:\s*"(\d+(?:\.\d+)?)s"', response.content)
    return float(match.group(1)) if match else None


def _daily_quota(response: httpx.Response) -> bool:
    return response.status_code == 429 and b"PerDay" in response.content


def test_a_policy_for_another_protocol_is_data_too() -> None:
    gemini_like = RetryPolicy(
        statuses=frozenset({408, 429, 500, 502, 503, 504}),
        refuse=_daily_quota,
        wait_hints=(_retry_delay, retry_after),
        hint_is_floor=False,
        over_cap="give_up",
        hint_cap_seconds=60.0,
    )
    per_minute = _response(429, {"error": {"status": "RESOURCE_EXHAUSTED", "details": [{"retryDelay": "37s"}]}})
    per_day = _response(429, {"error": {"details": [{"quotaId": "GenerateRequestsPerDayPerProject"}]}})
    assert gemini_like.retryable(per_minute) and gemini_like.wait_after(0, per_minute) == 37.0
    assert not gemini_like.retryable(per_day)
    assert gemini_like.retryable(_response(503)) and not gemini_like.retryable(_response(501))


class Script:
    """Answers from a list, one per request (an exception instance is raised instead)."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


async def _send(script: Script, policy: RetryPolicy) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.MockTransport(script)) as client:
        return await send_with_retry(lambda: client.get("https://upstream.test/x"), policy)


async def test_the_loop_retries_until_success_and_counts_attempts() -> None:
    script = Script(_response(503), _response(502), _response(200, {"ok": True}))
    response = await _send(script, fast(FAL_RETRY, 5))
    assert response.status_code == 200 and script.requests == 3


async def test_the_loop_returns_the_last_answer_once_attempts_run_out() -> None:
    script = Script(_response(503), _response(503), _response(503), _response(200))
    response = await _send(script, fast(OPENAI_RETRY, 3))
    assert response.status_code == 503 and script.requests == 3


async def test_the_loop_gives_up_at_once_when_asked_to_wait_too_long() -> None:
    script = Script(_response(429, headers={"retry-after": "3600"}), _response(200))
    response = await _send(script, fast(OPENAI_RETRY, 4))
    assert response.status_code == 429 and script.requests == 1


async def test_connection_failures_are_retried_and_the_last_one_raised() -> None:
    request = httpx.Request("GET", "https://upstream.test/x")
    script = Script(httpx.ConnectError("refused", request=request), _response(200))
    assert (await _send(script, fast(FAL_RETRY, 2))).status_code == 200
    failing = Script(*(httpx.ConnectError("refused", request=request) for _ in range(3)))
    with pytest.raises(httpx.ConnectError):
        await _send(failing, fast(FAL_RETRY, 3))
    assert failing.requests == 3


async def test_a_read_timeout_is_never_resent() -> None:
    request = httpx.Request("GET", "https://upstream.test/x")
    script = Script(httpx.ReadTimeout("slow", request=request), _response(200))
    with pytest.raises(httpx.ReadTimeout):
        await _send(script, fast(OPENAI_RETRY, 4))
    assert script.requests == 1


async def test_a_write_error_is_resent_by_the_openai_policy_only() -> None:
    request = httpx.Request("GET", "https://upstream.test/x")
    script = Script(httpx.WriteError("cut", request=request), _response(200))
    assert (await _send(script, fast(OPENAI_RETRY, 2))).status_code == 200
    script = Script(httpx.WriteError("cut", request=request), _response(200))
    with pytest.raises(httpx.WriteError):
        await _send(script, fast(FAL_RETRY, 2))
