"""What ``make load-test`` injects: the fault kinds, the expected answer of each, and the seeded plan.

Each request draws one fault (or none) from a seeded RNG and carries it to the fake fal as a
``[fake:NAME]`` marker in its prompt; :data:`FAULTS` says what the client must get back and what the
fake must record for it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

MAX_RETRIES = 2
SLOW_SECONDS = 1.5


@dataclass(frozen=True)
class Fault:
    """One injected fault: its marker, the client's expected answer and what the fake must record."""

    marker: str | None
    status: int
    code: str | None
    attempts: int
    """Submit requests the fake receives for one client request (retries included)."""
    accepted: bool
    """Whether the fake accepts the job (a submit that succeeds at some attempt)."""


FAULTS: dict[str, Fault] = {
    "none": Fault(None, 200, None, 1, True),
    "429_retry_after": Fault("429:1", 200, None, 2, True),
    "503_once": Fault("503", 200, None, 2, True),
    "reset_once": Fault("reset", 200, None, 2, True),
    "slow": Fault(f"slow:{SLOW_SECONDS}", 200, None, 1, True),
    "reset_always": Fault("reset_always", 502, "upstream_unreachable", MAX_RETRIES + 1, False),
    "500": Fault("500", 502, "upstream_error", 1, False),
    "422": Fault("422:guidance_scale", 400, "invalid_value", 1, False),
    "content_policy": Fault("content_policy", 400, "moderation_blocked", 1, False),
    "completed_error": Fault("completed_error", 502, "upstream_error", 1, True),
    "malformed_json": Fault("malformed", 502, "upstream_bad_response", 1, True),
    "truncated_image": Fault("truncated", 502, "upstream_bad_response", 1, True),
    "html_not_json": Fault("html", 502, "upstream_bad_response", 1, False),
}
NO_FAULT_SHARE = 0.3


@dataclass(frozen=True)
class LoadConfig:
    requests: int = 2000
    concurrency: int = 100
    seed: int = 7
    timeout_seconds: float = 60.0
    url_share: float = 0.8
    ttl_seconds: int = 20
    sweep_seconds: float = 1.0
    fetch_every: int = 10
    """Download every N-th handed-out link right away as it is handed out (it must serve an image)."""


def plan_faults(config: LoadConfig) -> list[tuple[str, str]]:
    """(fault, response_format) per request, from the seeded RNG: the same seed, the same load."""
    rng = random.Random(config.seed)
    names = [name for name in FAULTS if name != "none"]
    plan = []
    for _ in range(config.requests):
        fault = "none" if rng.random() < NO_FAULT_SHARE else rng.choice(names)
        plan.append((fault, "url" if rng.random() < config.url_share else "b64_json"))
    return plan
