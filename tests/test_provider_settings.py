"""Provider settings assembled per kind from defaults, the YAML file and each kind's variables.

Also the configuration mistakes :meth:`Settings.load` refuses in process (the one-line output of
``pixelgate serve`` for each is in ``tests/e2e/test_config_refusals.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from app.main import create_app, provider_settings
from app.settings import Settings
from core.errors import ConfigError
from core.model_shape import SizeSpec
from providers.fal import DEFAULT_FAL_BASE_URL, DEFAULT_FAL_STORAGE_URL, FalSettings
from providers.openai import DEFAULT_OPENAI_BASE_URL, OpenAISettings
from tests.conftest import make_settings


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A YAML file named by PIXELGATE_CONFIG; each test writes it."""
    path = tmp_path / "pixelgate.yaml"
    path.write_text("{}\n", encoding="utf-8")
    monkeypatch.setenv("PIXELGATE_CONFIG", str(path))
    monkeypatch.setenv("PIXELGATE_DATA_DIR", str(tmp_path / "data"))
    return path


def _load(config: Path, text: str) -> Settings:
    config.write_text(text, encoding="utf-8")
    return Settings.load()


def _refusal(config: Path, text: str) -> str:
    config.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        Settings.load()
    return str(refused.value)


def test_each_kind_has_its_settings_model_and_defaults(tmp_path: Path) -> None:
    providers = make_settings(tmp_path).providers
    fal, openai, sandbox = providers["fal"], providers["openai"], providers["sandbox"]
    assert isinstance(fal, FalSettings)
    assert (fal.base_url, fal.storage_url, fal.key) == (DEFAULT_FAL_BASE_URL, DEFAULT_FAL_STORAGE_URL, None)
    assert isinstance(openai, OpenAISettings) and openai.base_url == DEFAULT_OPENAI_BASE_URL
    assert sandbox.kind == "sandbox" and list(providers) == ["fal", "gemini", "openai", "replicate", "sandbox"]


def test_each_kind_reads_the_variables_it_declares(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAL_KEY", "fal-env")
    monkeypatch.setenv("PIXELGATE_FAL_STORAGE_URL", "http://127.0.0.1:12")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("PIXELGATE_OPENAI_BASE_URL", "http://127.0.0.1:13/v1")
    settings = _load(config, "providers: {fal: {api_key: fal-yaml, base_url: 'http://127.0.0.1:11'}}\n")
    fal, openai = settings.providers["fal"], settings.providers["openai"]
    assert isinstance(fal, FalSettings)
    # The environment wins field by field: the YAML base_url stays, its api_key does not.
    assert (fal.key, fal.base_url, fal.storage_url) == ("fal-env", "http://127.0.0.1:11", "http://127.0.0.1:12")
    assert (openai.key, openai.base_url) == ("sk-env", "http://127.0.0.1:13/v1")


def test_the_fal_status_stream_is_on_by_default_and_set_by_yaml_or_variable(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fal = _load(config, "{}\n").providers["fal"]
    assert isinstance(fal, FalSettings) and fal.status_stream is True
    fal = _load(config, "providers: {fal: {status_stream: false}}\n").providers["fal"]
    assert isinstance(fal, FalSettings) and fal.status_stream is False
    monkeypatch.setenv("PIXELGATE_FAL_STATUS_STREAM", "true")  # the variable wins over the file
    fal = _load(config, "providers: {fal: {status_stream: false}}\n").providers["fal"]
    assert isinstance(fal, FalSettings) and fal.status_stream is True
    monkeypatch.setenv("PIXELGATE_FAL_STATUS_STREAM", "0")
    fal = _load(config, "{}\n").providers["fal"]
    assert isinstance(fal, FalSettings) and fal.status_stream is False


def test_keyword_arguments_win_over_a_kinds_variables(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAL_KEY", "fal-env")
    settings = Settings(providers={"fal": {"api_key": "fal-kwarg"}})
    assert settings.providers["fal"].key == "fal-kwarg"


def test_a_variable_of_one_kind_does_not_reach_another_provider(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    settings = _load(config, "providers: {local: {kind: openai, base_url: 'http://127.0.0.1:9/v1'}}\n")
    local = settings.providers["local"]
    assert isinstance(local, OpenAISettings) and local.key is None and local.base_url == "http://127.0.0.1:9/v1"


def test_a_kinds_own_field_is_refused_on_another_kind(config: Path) -> None:
    line = _refusal(config, "providers: {local: {kind: openai, storage_url: 'http://x'}}\n")
    assert line.startswith("invalid configuration: unknown key 'storage_url' in providers.local")


def test_download_hosts_from_the_environment_reach_every_provider(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, providers={"fal": {"fetch_hosts": ["cdn.test"]}}, fetch_allow_hosts=["127.0.0.1:9"]
    )
    hosts = {name: conf.fetch_hosts for name, conf in provider_settings(settings).items()}
    assert hosts["fal"] == ("cdn.test", "127.0.0.1:9") and hosts["openai"] == ("127.0.0.1:9",)


def test_the_minimal_openai_entry_gets_the_openai_shape(tmp_path: Path) -> None:
    minimal = {"id": "x", "provider": "openai", "upstream": "some-model", "modes": ["edit"]}
    [routed] = make_settings(tmp_path, models=[minimal]).models
    entry = routed.primary
    assert entry.images is not None
    assert (entry.images.field, entry.images.kind, entry.images.max_images, entry.images.mask_field) == (
        "image",
        "list",
        16,
        "mask",
    )
    assert (entry.size.kind, entry.size.field) == ("pixel_enum", "size")
    assert "1536x1024" in entry.size.values
    assert (entry.count.field, entry.count.max) == ("n", 10)
    assert (entry.output_format.field, entry.output_format.values) == ("output_format", ("png", "jpeg", "webp"))


def test_a_key_the_entry_spells_replaces_the_default_whole(tmp_path: Path) -> None:
    entry = {
        "id": "y",
        "provider": "openai",
        "upstream": "dall-e-3",
        "modes": ["generate"],
        "size": {"kind": "pixel_enum", "field": "size", "values": ["1024x1024"]},
        "count": {"field": "n", "max": 1},
    }
    [routed] = make_settings(tmp_path, models=[entry]).models
    model = routed.primary
    assert model.size == SizeSpec(kind="pixel_enum", field="size", values=("1024x1024",))
    assert model.count.max == 1 and model.output_format.field == "output_format"


def test_a_model_of_a_second_openai_provider_gets_the_shape_too(tmp_path: Path) -> None:
    [routed] = make_settings(
        tmp_path,
        providers={"local": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        models=[{"id": "z", "provider": "local", "upstream": "m", "modes": ["edit"]}],
    ).models
    model = routed.primary
    assert model.images is not None and model.images.field == "image"


def test_a_sandbox_model_gets_no_openai_shape(config: Path) -> None:
    line = _refusal(config, "models: [{id: x, provider: sandbox, upstream: y, modes: [edit]}]\n")
    assert "no 'images' input spec" in line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("model: []\n", "unknown key 'model' in the configuration (did you mean 'models'?)"),
        ("max_inflgt: 2\n", "unknown key 'max_inflgt' in the configuration (did you mean 'max_inflight'?)"),
        ("providers: {fal: {base_ur: x}}\n", "unknown key 'base_ur' in providers.fal (did you mean 'base_url'?)"),
        (
            "models: [{id: x, provider: sandbox, upstream: y, modse: [edit], images: {field: image}}]\n",
            "unknown key 'modse' in models[0] (did you mean 'modes'?)",
        ),
        (
            "models: [{id: x, provider: sandbox, upstream: y, modes: [edit], images: {feild: image}}]\n",
            "unknown key 'feild' in models[0].images (did you mean 'field'?)",
        ),
        (
            "models: [{id: x, provider: fall, upstream: y, modes: [edit]}]\n",
            "models[0].provider: no provider 'fall' is configured (did you mean 'fal'?)",
        ),
        (
            "providers: {local: {api_key: k, base_url: 'http://127.0.0.1:9/v1'}}\n",
            "providers.local: a provider not named after a kind needs 'kind' "
            "(one of: fal, gemini, openai, replicate, sandbox)",
        ),
        (
            "providers: {local: {kind: opneai}}\n",
            "providers.local.kind: unknown provider kind 'opneai' (did you mean 'openai'?)",
        ),
        ("max_inflight: 0\n", "max_inflight (PIXELGATE_MAX_INFLIGHT): Input should be greater than or equal to 1"),
        ("- just a list\n", "must hold a mapping at the top level"),
    ],
)
def test_mistakes_are_refused_with_one_line_naming_the_key(config: Path, text: str, expected: str) -> None:
    line = _refusal(config, text)
    assert line.startswith("invalid configuration: ") and expected in line and "\n" not in line


def test_an_unknown_pixelgate_variable_is_refused_with_the_closest_name(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIXELGATE_MAX_INFLGHT", "3")
    with pytest.raises(ConfigError) as refused:
        Settings.load()
    assert str(refused.value) == (
        "invalid configuration: unknown environment variable PIXELGATE_MAX_INFLGHT "
        "(did you mean 'PIXELGATE_MAX_INFLIGHT'?)"
    )


def test_known_variables_and_the_client_examples_variables_are_accepted(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "PIXELGATE_MAX_INFLIGHT": "3",
        "pixelgate_max_queued": "5",  # pydantic-settings matches names case-insensitively; so does the check
        "PIXELGATE_FAL_BASE_URL": "http://127.0.0.1:11",
        "PIXELGATE_OPENAI_BASE_URL": "http://127.0.0.1:12/v1",
        "PIXELGATE_URL": "http://127.0.0.1:8080",
        "PIXELGATE_API_KEY": "sk-client",
    }.items():
        monkeypatch.setenv(name, value)
    settings = Settings.load()
    assert (settings.max_inflight, settings.max_queued, settings.api_keys) == (3, 5, [])


def test_create_app_refuses_an_unwritable_data_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory", encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        create_app(make_settings(blocker / "data"))
    assert str(refused.value).startswith(f"invalid configuration: data_dir (PIXELGATE_DATA_DIR) {blocker / 'data'}")


def test_create_app_without_settings_loads_them_and_refuses_mistakes(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config.write_text("modles: []\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="did you mean 'models'"):
        create_app()


def test_secrets_stay_secret_in_settings(tmp_path: Path) -> None:
    conf = make_settings(tmp_path, providers={"openai": {"api_key": "sk-very-secret"}}).providers["openai"]
    assert isinstance(conf.api_key, SecretStr) and "sk-very-secret" not in repr(conf)
