"""Debian's Chromium for the browser tests, installed with apt-get when it is missing.

Playwright's own browser download is not used (it does not work everywhere these tests run); the
tests drive ``/usr/bin/chromium`` instead. ``ensure_chromium`` is idempotent: with the browser present
it only checks the path. Where it cannot be installed (no apt-get, not root and no password-less
sudo, no network) it raises ``ChromiumUnavailable`` with the reason, so the tests fail loudly
instead of being skipped. The installing is :func:`tests.apt.ensure_program`'s.
"""

from __future__ import annotations

from pathlib import Path

from tests.apt import PackageUnavailable, ensure_program

CHROMIUM = Path("/usr/bin/chromium")

ChromiumUnavailable = PackageUnavailable
"""Chromium is missing and could not be installed."""


def ensure_chromium() -> Path:
    """The path of Debian's Chromium, after installing the ``chromium`` package (with the packages it
    recommends: fonts) if needed."""
    return ensure_program(CHROMIUM, "chromium", recommends=True)
