"""The one place errors become responses.

``GatewayError`` subclasses render themselves (status, OpenAI type, code, param, and whether to
retry: ``x-should-retry``, see :mod:`core.errors`); FastAPI's request validation errors and
Starlette's HTTP errors (404 route, 405 method) are rendered in the same ``{"error": {...}}`` shape;
anything else is a logged 500 that reveals nothing internal.
"""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from core.errors import SHOULD_RETRY_HEADER, ClientGone, GatewayError, InvalidRequestError

log = logging.getLogger("pixelgate")
CLIENT_CLOSED_REQUEST = 499
_NO_RETRY = {SHOULD_RETRY_HEADER: "false"}


def json_response(body: object, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response serialized with orjson (image payloads make this the hot path)."""
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json", headers=headers)


class ChunksResponse(Response):
    """A JSON body given as byte chunks: one ASGI body message each, under the total Content-Length.

    Sends large image payloads as they are, without joining them into one more copy.
    """

    def __init__(self, chunks: list[bytes | memoryview], headers: dict[str, str] | None = None) -> None:
        self.chunks = chunks
        super().__init__(None, 200, headers, "application/json")
        self.headers["content-length"] = str(sum(len(chunk) for chunk in chunks))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        last = len(self.chunks) - 1
        for index, chunk in enumerate(self.chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": index < last})
        if not self.chunks:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


def error_response(exc: GatewayError) -> Response:
    return json_response(exc.to_body(), exc.status_code, exc.response_headers())


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return error_response(exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path", "header")]
    param = loc[0] if loc else None
    message = f"Invalid value for '{param}': {first.get('msg', 'invalid')}" if param else "invalid request"
    return error_response(InvalidRequestError(message, param=param, code="invalid_value"))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    error_type = "invalid_request_error" if status < 500 else "server_error"
    code = {404: "not_found", 405: "method_not_allowed"}.get(status)
    body = {"error": {"message": str(exc.detail), "type": error_type, "param": None, "code": code}}
    return json_response(body, status, {**(exc.headers or {}), **_NO_RETRY})


def internal_error_response() -> Response:
    """The 500 for an unexpected exception: the OpenAI shape, nothing internal revealed."""
    body = {
        "error": {
            "message": "internal error in the gateway",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }
    # A bug is likely to fail again the same way, possibly after upstream work was paid for.
    return json_response(body, 500, _NO_RETRY)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return internal_error_response()


async def _client_gone(request: Request, exc: Exception) -> Response:
    # Nobody reads this answer; 499 (nginx's "client closed request") is what the access log shows.
    return Response(status_code=CLIENT_CLOSED_REQUEST)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ClientGone, _client_gone)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
