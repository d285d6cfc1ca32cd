"""``PIXELGATE_STORE_URL`` and the standard ``AWS_*`` variables: which store a gateway builds, and refusals at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.hosting import build_host, build_store
from app.settings import Settings
from core.errors import ConfigError
from normalization.hosting import DirectoryStore
from normalization.hosting.s3 import S3Location, S3Store
from tests.conftest import make_settings

AWS = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")


@pytest.fixture(autouse=True)
def _no_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*AWS, "PIXELGATE_STORE_URL"):
        monkeypatch.delenv(name, raising=False)


def test_the_default_store_is_files_in_the_data_dir(tmp_path: Path) -> None:
    store = build_store(make_settings(tmp_path))
    assert isinstance(store, DirectoryStore) and store.root == tmp_path / "images"


def test_a_file_url_names_the_directory(tmp_path: Path) -> None:
    store = build_store(make_settings(tmp_path, store_url=f"file://{tmp_path}/elsewhere"))
    assert isinstance(store, DirectoryStore) and store.root == tmp_path / "elsewhere"


def test_an_s3_url_reads_the_standard_aws_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXELGATE_STORE_URL", "s3://results/pixelgate")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "access")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-value")
    monkeypatch.setenv("AWS_REGION", "")  # compose passes unset variables as empty: the default stays
    monkeypatch.setenv("PIXELGATE_DATA_DIR", str(tmp_path))
    settings = Settings.load()
    assert settings.s3.endpoint_url == "http://127.0.0.1:9000" and settings.s3.region == "us-east-1"
    assert settings.s3.secret_access_key is not None
    assert "secret-value" not in repr(settings)
    store = build_store(settings)
    assert isinstance(store, S3Store) and store.location == S3Location("results", "pixelgate/")


def test_the_yaml_s3_block_is_checked_and_the_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "pixelgate.yaml"
    config.write_text("store_url: s3://images\ns3: {endpoint_url: 'http://yaml:9000', region: eu-west-1}\n")
    monkeypatch.setenv("PIXELGATE_CONFIG", str(config))
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://env:9000")
    settings = Settings.load()
    assert (settings.store_url, settings.s3.endpoint_url, settings.s3.region) == (
        "s3://images",
        "http://env:9000",
        "eu-west-1",
    )
    config.write_text("s3: {endpoint: 'http://yaml:9000'}\n")
    with pytest.raises(ConfigError, match="endpoint"):
        Settings.load()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("gs://bucket/x", "unknown scheme 'gs' (known: file, s3)"),
        ("s3:///no-bucket", "must look like s3://bucket/prefix"),
        ("file://relative/path", "must look like file:///absolute/path"),
    ],
)
def test_a_malformed_store_url_is_refused_at_start(tmp_path: Path, url: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_store(make_settings(tmp_path, store_url=url))
    assert str(caught.value).startswith("invalid configuration: store_url (PIXELGATE_STORE_URL)")
    assert message in str(caught.value)


def test_a_shared_store_needs_a_shared_signing_secret(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, store_url="s3://images/x", signing_secret=None)
    with pytest.raises(ConfigError, match="set PIXELGATE_SIGNING_SECRET too"):
        build_host(settings)
    assert not (tmp_path / "signing.key").exists()
    assert isinstance(build_host(make_settings(tmp_path, store_url="s3://images/x")).store, S3Store)
