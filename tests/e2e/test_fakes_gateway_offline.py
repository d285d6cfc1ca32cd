"""The README's ``fakes-gateway`` block: pixelgate pointed at the fake Replicate and fake Gemini as documented.

The block's YAML and variables are read from the README (ports 8091/8092 replaced by the fakes' own),
the gateway is started on them as ``make run`` would, and the documented behaviour is checked through
the openai SDK: both minimal entries serve, and the two markers the README names give their errors.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from app.settings import Settings
from tests.conftest import TEST_KEY
from tests.e2e.test_readme_examples import readme_example
from tests.fakes.fake_gemini import FakeGemini
from tests.fakes.fake_replicate import FakeReplicate
from tests.images import png_bytes
from tests.live import LiveGateway

VARIABLE = re.compile(r"\b([A-Z_]+)=(\S+)")


@pytest.fixture
def sdk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[openai.OpenAI]:
    block = readme_example("fakes-gateway")
    yaml_text = re.search(r"<<'YAML'\n(.*?)\nYAML\n", block, re.DOTALL)
    assert yaml_text, block
    assert block.rstrip().endswith("make run")
    with FakeReplicate(latency=0.05) as replicate, FakeGemini() as gemini:
        replicate.max_output_side = gemini.max_output_side = 64
        ports = {"8091": str(replicate.port), "8092": str(gemini.port)}
        variables = dict(VARIABLE.findall(block[yaml_text.end() :]))
        assert set(variables) == {
            "REPLICATE_API_TOKEN",
            "PIXELGATE_REPLICATE_BASE_URL",
            "GEMINI_API_KEY",
            "PIXELGATE_GEMINI_BASE_URL",
            "PIXELGATE_CONFIG",
        }
        (tmp_path / "offline.yaml").write_text(f"api_keys: [{TEST_KEY}]\n{yaml_text.group(1)}\n", encoding="utf-8")
        for name, value in variables.items():
            for documented, actual in ports.items():
                value = value.replace(f"127.0.0.1:{documented}", f"127.0.0.1:{actual}")
            monkeypatch.setenv(name, str(tmp_path / value) if name == "PIXELGATE_CONFIG" else value)
        monkeypatch.setenv("PIXELGATE_DATA_DIR", str(tmp_path / "data"))
        with (
            LiveGateway(Settings.load()) as live,
            openai.OpenAI(base_url=live.api_url, api_key=TEST_KEY, max_retries=0, timeout=60) as client,
        ):
            yield client


def test_the_documented_set_up_serves_both_fakes_models_and_their_markers(sdk: openai.OpenAI) -> None:
    edited = sdk.images.edit(
        model="qwen-edit-offline",
        image=("in.png", png_bytes(48, 32), "image/png"),
        prompt="x",
        response_format="b64_json",
    )
    generated = sdk.images.generate(model="banana-offline", prompt="a lighthouse", response_format="b64_json")
    assert edited.data and generated.data
    assert (edited.model_extra or {})["metadata"]["provider"] == "replicate"
    assert (generated.model_extra or {})["metadata"]["provider"] == "gemini"
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.images.edit(
            model="qwen-edit-offline",
            image=("in.png", png_bytes(48, 32), "image/png"),
            prompt="[fake:sensitive] x",
        )
    assert isinstance(refused.value.body, dict) and refused.value.body["code"] == "moderation_blocked"
    with pytest.raises(openai.APIStatusError) as empty:
        sdk.images.generate(model="banana-offline", prompt="[fake:text_only] a cat")
    assert empty.value.status_code == 502
    assert isinstance(empty.value.body, dict) and empty.value.body["code"] == "upstream_no_image"
