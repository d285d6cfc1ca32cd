"""LinkSigner and the signing key file."""

from __future__ import annotations

import base64
import hashlib
import hmac
import stat
from pathlib import Path

import pytest

from normalization.hosting.signing import KEY_FILE, LinkSigner, load_or_create_secret

SECRET = b"s" * 32
NAME = "A" * 32 + ".png"


def test_signature_is_unpadded_urlsafe_hmac_sha256() -> None:
    sig = LinkSigner(SECRET).sign(NAME, 1_700_000_000)
    expected = hmac.new(SECRET, f"{NAME}\n1700000000".encode(), hashlib.sha256).digest()
    assert "=" not in sig and "+" not in sig and "/" not in sig
    assert base64.urlsafe_b64decode(sig + "=") == expected


def test_verify_accepts_a_fresh_link_and_rejects_expiry() -> None:
    signer = LinkSigner(SECRET)
    sig = signer.sign(NAME, 1000)
    assert signer.verify(NAME, 1000, sig, now=999.9)
    assert not signer.verify(NAME, 1000, sig, now=1000)
    assert signer.matches(NAME, 1000, sig)  # still genuine, only expired


@pytest.mark.parametrize(
    ("name", "expires", "tamper"),
    [
        ("B" * 32 + ".png", 1000, None),  # other image
        (NAME, 1001, None),  # extended expiry
        (NAME, 1000, "flip"),  # altered signature
        (NAME, 1000, "truncate"),
        (NAME, 1000, "empty"),
        (NAME, 1000, "padded"),
    ],
)
def test_any_tampering_fails(name: str, expires: int, tamper: str | None) -> None:
    signer = LinkSigner(SECRET)
    sig = signer.sign(NAME, 1000)
    if tamper == "flip":
        sig = ("B" if sig[0] != "B" else "C") + sig[1:]
    elif tamper == "truncate":
        sig = sig[:-1]
    elif tamper == "empty":
        sig = ""
    elif tamper == "padded":
        sig += "="
    assert not signer.verify(name, expires, sig, now=0)


def test_another_secret_does_not_verify() -> None:
    sig = LinkSigner(SECRET).sign(NAME, 1000)
    assert not LinkSigner(b"t" * 32).verify(NAME, 1000, sig, now=0)


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        LinkSigner(b"short")


def test_configured_secret_wins_and_no_file_is_written(tmp_path: Path) -> None:
    assert load_or_create_secret(tmp_path, "configured-secret-value") == b"configured-secret-value"
    assert not (tmp_path / KEY_FILE).exists()
    with pytest.raises(ValueError):
        load_or_create_secret(tmp_path, "short")


def test_generated_secret_is_kept_with_mode_0600(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = load_or_create_secret(data_dir, None)
    key_file = data_dir / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(bytes.fromhex(first.decode())) == 32
    assert load_or_create_secret(data_dir, None) == first
    assert [p.name for p in data_dir.iterdir()] == [KEY_FILE]
    # the file's text is a valid configured secret: copying it keeps links valid
    assert load_or_create_secret(tmp_path, key_file.read_text()) == first


def test_empty_key_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE).write_text("")
    with pytest.raises(ValueError):
        load_or_create_secret(tmp_path, None)
