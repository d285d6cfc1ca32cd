"""A webhook receiver on loopback: records every POST it gets (headers and raw body), and can answer
the first ones with an error to exercise the sender's retries.

``with WebhookReceiver() as receiver:`` gives ``receiver.url`` (``http://127.0.0.1:<port>/hook``);
``receiver.fail_first = 2`` answers the next two deliveries 500; ``receiver.received`` lists them all,
failed ones included, with the status answered.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.loopback import LoopbackFake


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    answered: int
    at: float = field(default_factory=time.monotonic)


class WebhookReceiver(LoopbackFake):
    name = "webhook receiver"

    def __init__(self) -> None:
        super().__init__()
        self.fail_first = 0
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self.app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])

    @property
    def url(self) -> str:
        return f"{self.root_url}/hook"

    def delivered(self) -> list[Received]:
        """The deliveries answered 2xx."""
        with self._lock:
            return [item for item in self.received if item.answered < 300]

    def reset(self) -> None:
        with self._lock:
            self.fail_first = 0
            self.received.clear()

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        with self._lock:
            status = 500 if self.fail_first > 0 else 204
            self.fail_first = max(0, self.fail_first - 1)
            self.received.append(Received(dict(request.headers), body, status))
        return Response(status_code=status)
