"""How the browser tests get Chromium: apt-get only when it is missing, and a loud failure otherwise."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests import apt
from tests.browser import chromium

Calls = list[list[str]]


def fake_apt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, outcomes: list[int], *, creates: bool) -> Calls:
    """apt-get answering ``outcomes`` in turn; the last successful install creates the browser if ``creates``."""
    browser = tmp_path / "chromium"
    calls: Calls = []

    def run(command: list[str]) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        code = outcomes[len(calls) - 1]
        if code == 0 and "install" in command and creates:
            browser.touch()
        return subprocess.CompletedProcess(command, code, stdout="", stderr=f"E: step {len(calls)} said {code}")

    monkeypatch.setattr(chromium, "CHROMIUM", browser)
    monkeypatch.setattr(apt, "_run", run)
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    return calls


def test_a_present_browser_installs_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = fake_apt(monkeypatch, tmp_path, [], creates=True)
    (tmp_path / "chromium").touch()
    assert chromium.ensure_chromium() == tmp_path / "chromium"
    assert calls == []


def test_a_missing_browser_is_installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = fake_apt(monkeypatch, tmp_path, [0], creates=True)
    assert chromium.ensure_chromium().exists()
    assert [command[-3:] for command in calls] == [["install", "-y", "chromium"]]


def test_the_package_lists_are_updated_when_the_first_install_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = fake_apt(monkeypatch, tmp_path, [100, 0, 0], creates=True)
    assert chromium.ensure_chromium().exists()
    assert [command[-1] for command in calls] == ["chromium", "update", "chromium"]


def test_an_impossible_install_fails_loudly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_apt(monkeypatch, tmp_path, [100, 100], creates=False)
    with pytest.raises(chromium.ChromiumUnavailable, match="apt-get update failed"):
        chromium.ensure_chromium()
    fake_apt(monkeypatch, tmp_path, [100, 0, 100], creates=False)
    with pytest.raises(chromium.ChromiumUnavailable, match="apt-get install chromium failed:\nE: step 3 said 100"):
        chromium.ensure_chromium()


def test_without_apt_get_or_root_it_says_why(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_apt(monkeypatch, tmp_path, [], creates=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(chromium.ChromiumUnavailable, match="no apt-get"):
        chromium.ensure_chromium()
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/apt-get" if name == "apt-get" else None)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(chromium.ChromiumUnavailable, match="needs root"):
        chromium.ensure_chromium()
