"""Debian's Chromium for the browser tests, installed with apt-get when it is missing.

Playwright's own browser download is not used (it does not work everywhere these tests run); the
tests drive ``/usr/bin/chromium`` instead. ``ensure_chromium`` is idempotent: with the browser present
it only checks the path. Where it cannot be installed (no apt-get, not root and no password-less
sudo, no network) it raises ``ChromiumUnavailable`` with the reason, so the tests fail loudly
instead of being skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
APT_TIMEOUT_SECONDS = 900
LOCK_WAIT_SECONDS = 300


class ChromiumUnavailable(RuntimeError):
    """Chromium is missing and could not be installed."""


def ensure_chromium() -> Path:
    """The path of Debian's Chromium, after installing the ``chromium`` package if needed."""
    if CHROMIUM.exists():
        return CHROMIUM
    apt_get = shutil.which("apt-get")
    if apt_get is None:
        raise ChromiumUnavailable(f"{CHROMIUM} is missing and there is no apt-get to install the chromium package")
    command = [*_privileged(), apt_get, "-o", f"DPkg::Lock::Timeout={LOCK_WAIT_SECONDS}"]
    install = _run([*command, "install", "-y", "chromium"])
    if install.returncode != 0:  # a fresh image often has no package lists yet
        update = _run([*command, "update"])
        if update.returncode != 0:
            raise ChromiumUnavailable(f"apt-get update failed:\n{_tail(update)}")
        install = _run([*command, "install", "-y", "chromium"])
    if install.returncode != 0 or not CHROMIUM.exists():
        raise ChromiumUnavailable(f"apt-get install chromium failed:\n{_tail(install)}")
    return CHROMIUM


def _privileged() -> list[str]:
    if os.geteuid() == 0:
        return []
    sudo = shutil.which("sudo")
    if sudo is None:
        raise ChromiumUnavailable(f"{CHROMIUM} is missing; installing it needs root (or sudo), and this is not root")
    return [sudo, "-n"]


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT_SECONDS, check=False)


def _tail(result: subprocess.CompletedProcess[str]) -> str:
    return "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
