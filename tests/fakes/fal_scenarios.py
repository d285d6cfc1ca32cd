"""Scripted failures of the fake fal server: the answers each failure gives.

See :mod:`tests.fakes.fake_fal` for the list of scenarios and how a request picks one (the marker
syntax is :data:`tests.fakes.loopback.MARKER`).
"""

from __future__ import annotations

from pydantic import JsonValue
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from tests.fakes.loopback import ResetResponse

RETRYABLE_ONCE = frozenset({"429", "502", "503", "504", "reset"})
HTML = "<html><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>"


def error(status: int, detail: JsonValue, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def policy_detail() -> dict[str, JsonValue]:
    return {
        "loc": ["body", "prompt"],
        "msg": "The content could not be processed because it contained material flagged by a content checker.",
        "type": "content_policy_violation",
        "url": "https://docs.fal.ai/errors#content_policy_violation",
    }


def submit_failure(request: Request, base: str, arg: str | None) -> Response | None:
    """The answer a submit-time failure ``base`` (scenario without ``_always``) gives, if it is one."""
    simple: dict[str, Response] = {
        "500": error(500, "Internal Server Error"),
        "502": error(502, "runner_incomplete_response", {"x-fal-error-type": "runner_incomplete_response"}),
        "503": error(503, "runner_scheduling_failure", {"x-fal-error-type": "runner_scheduling_failure"}),
        "504": error(504, "request_timeout", {"x-fal-error-type": "request_timeout"}),
        "504_user": error(504, "startup_timeout", {"x-fal-request-timeout-type": "user"}),
        "503_no_retry": error(503, "runner_scheduling_failure", {"x-fal-retryable": "false"}),
        "401": error(401, "No user found for Key ID and Secret"),
        "403": error(403, "User is locked. Reason: Exhausted balance."),
        "404": error(404, f"Application '{request.path_params['endpoint_id']}' not found"),
        "422_string": error(422, "Unprocessable input"),
        "html": HTMLResponse(HTML),
        "reset": ResetResponse(),
    }
    if base in simple:
        return simple[base]
    if base == "429":
        return error(429, "Too many requests", {"retry-after": arg or "1"})
    if base == "422":
        field_name = arg or "guidance_scale"
        detail: JsonValue = [
            {
                "loc": ["body", field_name],
                "msg": "Input should be less than or equal to 20",
                "type": "less_than_equal",
                "ctx": {"le": 20},
            }
        ]
        return error(422, detail)
    if base == "content_policy":
        return error(422, [policy_detail()], {"x-fal-retryable": "false"})
    if base == "echo_auth":
        auth = request.headers.get("authorization", "")
        return error(422, [{"loc": ["body", "prompt"], "msg": f"bad header {auth}", "type": "value_error"}])
    return None
