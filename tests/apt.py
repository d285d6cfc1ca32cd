"""Debian packages a test needs, installed with apt-get when their program is missing.

``ensure_program(path, package)`` is idempotent: with the program present it only checks the path.
It runs ``apt-get install`` (and, when that fails, ``apt-get update`` once and the install again) as
root or through password-less sudo. Where it cannot install (no apt-get, no root, no network) it
raises :class:`PackageUnavailable` with the reason, so the tests fail loudly instead of being skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

APT_TIMEOUT_SECONDS = 900
LOCK_WAIT_SECONDS = 300


class PackageUnavailable(RuntimeError):
    """A program a test needs is missing and its package could not be installed."""


def ensure_program(path: Path, package: str, *, recommends: bool = False) -> Path:
    """``path``, after installing Debian's ``package`` (with its recommended packages when
    ``recommends``) if the file is missing."""
    if path.exists():
        return path
    apt_get = shutil.which("apt-get")
    if apt_get is None:
        raise PackageUnavailable(f"{path} is missing and there is no apt-get to install the {package} package")
    command = [*_privileged(path), apt_get, "-o", f"DPkg::Lock::Timeout={LOCK_WAIT_SECONDS}"]
    install_command = [*command, "install", "-y", *([] if recommends else ["--no-install-recommends"]), package]
    install = _run(install_command)
    if install.returncode != 0:  # a fresh image often has no package lists yet
        update = _run([*command, "update"])
        if update.returncode != 0:
            raise PackageUnavailable(f"apt-get update failed:\n{_tail(update)}")
        install = _run(install_command)
    if install.returncode != 0 or not path.exists():
        raise PackageUnavailable(f"apt-get install {package} failed:\n{_tail(install)}")
    return path


def _privileged(path: Path) -> list[str]:
    if os.geteuid() == 0:
        return []
    sudo = shutil.which("sudo")
    if sudo is None:
        raise PackageUnavailable(f"{path} is missing; installing it needs root (or sudo), and this is not root")
    return [sudo, "-n"]


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT_SECONDS, check=False)


def _tail(result: subprocess.CompletedProcess[str]) -> str:
    return "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
