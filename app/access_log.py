"""Keeps signed-link signatures out of the access log.

A hosted image's ``sig`` query parameter is the credential for that link until it expires, and
uvicorn's access log records every request's path with its query string. :class:`RedactSignatures`
rewrites the ``sig`` value before any handler sees the record, so an operator's log never holds a
working link.
"""

from __future__ import annotations

import logging
import re

ACCESS_LOGGER = "uvicorn.access"
_SIG = re.compile(r"([?&]sig=)[^&#\s]*")


def redact(text: str) -> str:
    """``text`` with the value of every ``sig`` query parameter replaced by ``[redacted]``."""
    return _SIG.sub(r"\1[redacted]", text)


class RedactSignatures(logging.Filter):
    """A logger filter: redacts ``sig`` in the record's message and string arguments; drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        return True


def install() -> RedactSignatures:
    """Attach a :class:`RedactSignatures` to uvicorn's access logger; returns it for :func:`uninstall`."""
    redactor = RedactSignatures()
    logging.getLogger(ACCESS_LOGGER).addFilter(redactor)
    return redactor


def uninstall(redactor: RedactSignatures) -> None:
    logging.getLogger(ACCESS_LOGGER).removeFilter(redactor)
