"""The gateway's logs: one line per request, in readable text or one JSON object per line.

``PIXELGATE_LOG_FORMAT`` picks the format (``text`` by default, ``json``) for everything the
``pixelgate serve`` process logs: the start-up summary, one line per request
(:class:`RequestLog`), upstream failures with their cause (``pixelgate.upstream``), uvicorn's own
messages. A log call carries its structured values as ``extra={"fields": {...}}``: the text format
appends them as ``name=value``, the JSON format makes them keys of the object.

The request line replaces uvicorn's access log: it names the request id, the key's id (never the
key), model, provider, status, error code, images, cost and the durations. It logs the path without
its query string, so a signed link's ``sig`` (a credential until it expires) never reaches the log.
Probes and scrapes (``/healthz``, ``/readyz``, ``/metrics``) log at DEBUG, so they do not drown the
rest at the default level.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from app.observe import RequestRecord

LogFormat = Literal["text", "json"]
FIELDS = "fields"
"""The ``extra`` key under which a log call passes its structured values."""
IN_MESSAGE = "in_message"
"""The ``extra`` key naming fields the message already shows: the text format leaves them out."""
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

request_log = logging.getLogger("pixelgate.request")


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, FIELDS, None)
    return fields if isinstance(fields, dict) else {}


def _text_value(value: object) -> str:
    if isinstance(value, list | tuple):
        text = ",".join(str(item) for item in value)
    else:
        text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return orjson.dumps(text).decode() if not text or any(ch.isspace() or ch in '"=' for ch in text) else text


class TextFormatter(logging.Formatter):
    """``2025-03-01T10:00:00.123Z INFO pixelgate.request: message name=value ...`` (None values, and the
    values the message already shows, left out)."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname} {record.name}: {record.getMessage()}"
        shown = getattr(record, IN_MESSAGE, ())
        fields = [(name, value) for name, value in _fields(record).items() if value is not None and name not in shown]
        extras = " ".join(f"{name}={_text_value(value)}" for name, value in fields)
        if extras:
            line = f"{line} {extras}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message``, then the record's fields
    (and ``exception``, the traceback, when there is one)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in _fields(record).items():
            entry.setdefault(name, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(record.msecs):03d}Z"


def log_config(level: str, log_format: LogFormat) -> dict[str, Any]:
    """The ``logging.config.dictConfig`` of ``pixelgate serve``: every line to stderr in ``log_format``."""
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    handler = {"class": "logging.StreamHandler", "formatter": "main", "stream": "ext://sys.stderr"}
    upper = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": {"()": f"{formatter.__module__}.{formatter.__qualname__}"}},
        "handlers": {"main": handler},
        "loggers": {
            "pixelgate": {"handlers": ["main"], "level": upper, "propagate": False},
            "uvicorn": {"handlers": ["main"], "level": upper, "propagate": False},
            "uvicorn.error": {"level": upper},
            "uvicorn.access": {"handlers": ["main"], "level": upper, "propagate": False},
        },
    }


class RequestLog:
    """A :class:`~app.observe.RequestObserver` that logs one line per finished request."""

    def request_started(self, image_request: bool) -> None:
        return None

    def request_finished(self, record: RequestRecord) -> None:
        if record.path in QUIET_PATHS and record.status < 400:
            level = logging.DEBUG
        elif record.status >= 500:
            level = logging.WARNING
        else:
            level = logging.INFO
        if not request_log.isEnabledFor(level):
            return
        fields: dict[str, Any] = {
            "request_id": record.request_id,
            "method": record.method,
            "path": record.path,
            "status": record.status,
            "error_code": record.error_code,
            "key_id": record.key_id,
            "model": record.model,
            "provider": record.provider,
            "total_ms": record.total_ms,
        }
        if record.image_request:
            fields.update(
                deployments=list(record.deployments) or None,
                images=record.images,
                megapixels=round(record.megapixels, 3),
                cost_usd=record.cost_usd,
                queue_ms=record.queue_ms,
                upstream_ms=record.upstream_ms,
                replay=record.replay or None,
            )
        request_log.log(
            level,
            "%s %s %d %d ms",
            record.method,
            record.path,
            record.status,
            record.total_ms,
            extra={FIELDS: fields, IN_MESSAGE: ("method", "path", "status", "total_ms")},
        )
