"""Replicate's error answers (``application/problem+json``) and the scenario names of the fake Replicate.

See :mod:`tests.fakes.fake_replicate` for the list and how a request picks one. Bodies follow the
reference (section 7): 401, 402, 404, 413, 422 and 429 are quoted from recorded answers; the 5xx
bodies are not documented (unconfirmed): 500 and 503 answer problem+json, 502 and 504 the HTML
page of the CDN in front of the API.
"""

from __future__ import annotations

from pydantic import JsonValue
from starlette.responses import HTMLResponse, JSONResponse, Response

from tests.fakes.loopback import Pick, ResetResponse

TRANSIENT = frozenset({"429", "500", "502", "503", "504", "reset"})
"""Create failures that pass on a retry of the same request (unless ``NAME_always``)."""
CREATE_FAILURES = TRANSIENT | {"401", "402", "404", "422"}
RUN_SCENARIOS = frozenset(
    {
        "ok",
        "sensitive",
        "nsfw",
        "failed",
        "never",
        "slow",
        "sync_processing",
        "output_404",
        "expired",
        "truncated",
        "not_image",
        "data_url",
        "fewer_outputs",
        "no_output",
    }
)
POLL_FAILURES = frozenset(f"poll_{status}" for status in ("429", "500", "502", "503", "504"))
KNOWN = CREATE_FAILURES | RUN_SCENARIOS | POLL_FAILURES

SENSITIVE = "The input or output was flagged as sensitive. Please try again with different inputs. (E005)"
NSFW_ALL = "All generated images contained NSFW content. Try running it again with a different prompt."
NSFW_ONE = "Generated image contained NSFW content. Try running it again with a different prompt."
# E1001 is Replicate's documented "Model Out of Memory" code; the full text of such a failure is not.
OUT_OF_MEMORY = "CUDA out of memory. Tried to allocate 2.00 GiB (E1001)"
CORRUPT_INPUT = "cannot identify image file <_io.BytesIO object>"
CDN_HTML = (
    "<html><head><title>{0}</title></head><body><center><h1>{0}</h1></center>"
    "<hr><center>cloudflare</center></body></html>"
)


def problem(status: int, detail: str, title: str | None = None, **extra: JsonValue) -> JSONResponse:
    body: dict[str, JsonValue] = {"detail": detail, "status": status}
    if title is not None:
        body["title"] = title
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def unauthenticated(missing: bool) -> JSONResponse:
    which = "an" if missing else "a valid"
    return problem(401, f"You did not pass {which} authentication token", "Unauthenticated")


def not_found() -> JSONResponse:
    return problem(404, "The requested resource could not be found.")


def throttled(retry_after: str | None) -> JSONResponse:
    # ``none``: no Retry-After header (whether Replicate sends one is unconfirmed); the text still says 1 s.
    seconds = "1" if retry_after in (None, "", "none") else retry_after
    response = problem(429, f"Request was throttled. Your rate limit resets in ~{seconds}s.")
    if retry_after != "none":
        response.headers["retry-after"] = retry_after or "1"
    return response


def invalid(
    fields: list[dict[str, JsonValue]], lines: list[str], title: str = "Input validation failed"
) -> JSONResponse:
    detail = "".join(f"{line}\n" for line in lines)
    return problem(422, detail, title, invalid_fields=list(fields))


def invalid_version() -> JSONResponse:
    return problem(
        422,
        "The specified version does not exist (or perhaps you don't have permission to use it?)",
        "Invalid version or not permitted",
    )


def server_error(status: int) -> Response:
    if status in (502, 504):
        title = {502: "502 Bad Gateway", 504: "504 Gateway Time-out"}[status]
        return HTMLResponse(CDN_HTML.format(title), status_code=status)
    titles = {500: "Internal Server Error", 503: "Service Unavailable", 429: "Too Many Requests"}
    if status == 429:
        return throttled(None)
    return problem(status, titles.get(status, "Server error"), titles.get(status))


def create_failure(chosen: Pick) -> Response | None:
    """The answer a create-time failure scenario gives, or None when ``chosen`` is not one."""
    name = chosen.name
    if name == "429":
        return throttled(chosen.arg)
    if name in ("500", "502", "503", "504"):
        return server_error(int(name))
    if name == "reset":
        return ResetResponse(201)
    if name == "401":
        return unauthenticated(missing=False)
    if name == "402":
        return problem(
            402,
            "You have insufficient credit to run this model. Go to https://replicate.com/account/billing#billing "
            "to purchase credit. Once you purchase credit, please wait a few minutes before trying again.",
            "Insufficient credit",
        )
    if name == "404":
        return not_found()
    if name == "422":
        field = chosen.arg or "seed"
        item: dict[str, JsonValue] = {
            "type": "invalid_type",
            "field": f"input.{field}",
            "description": "Invalid type. Expected: integer, given: string",
        }
        return invalid([item], [f"- input.{field}: {item['description']}"])
    return None
