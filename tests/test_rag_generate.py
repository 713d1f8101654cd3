"""HFGenerator (tiny random Gemma-3 + LoRA adapters) and OpenAIGenerator (mock transport)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from aldlab.errors import UserError
from aldlab.rag.generate import HFGenerator, OpenAIGenerator

MESSAGES = [{"role": "system", "content": "시스템"}, {"role": "user", "content": "ALD란?"}]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from aldlab.train.tiny import build_tiny_model_dir

    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter with non-zero B matrices, so it really changes the output."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 2.0)
    out = tmp_path_factory.mktemp("adapter") / "ft"
    peft_model.save_pretrained(str(out))
    return out


def test_base_and_adapter_share_one_base_model(tiny_model_dir: Path, adapter_dir: Path) -> None:
    gen = HFGenerator(str(tiny_model_dir), {"ft": str(adapter_dir)})
    assert gen.models() == ["base", "ft"]
    base_1 = gen.generate(MESSAGES, max_new_tokens=8)
    tuned = gen.generate(MESSAGES, max_new_tokens=8, adapter="ft")
    base_2 = gen.generate(MESSAGES, max_new_tokens=8, adapter="base")
    assert base_1 == base_2  # greedy: deterministic, and the adapter is really switched off
    assert tuned != base_1  # the adapter changes the output
    model = gen._model
    gen.generate(MESSAGES, max_new_tokens=2, adapter="ft")
    assert gen._model is model  # no reload between requests


def test_stream_concatenates_to_generate(tiny_model_dir: Path) -> None:
    gen = HFGenerator(str(tiny_model_dir))
    pieces = list(gen.stream(MESSAGES, max_new_tokens=6))
    assert "".join(pieces).strip() == gen.generate(MESSAGES, max_new_tokens=6)


def test_generation_is_serialised_across_threads(tiny_model_dir: Path) -> None:
    gen = HFGenerator(str(tiny_model_dir)).load()
    expected = gen.generate(MESSAGES, max_new_tokens=5)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(gen.generate(MESSAGES, max_new_tokens=5))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected] * 3


def test_unknown_adapter_and_missing_dir_are_user_errors(tiny_model_dir: Path, tmp_path: Path) -> None:
    gen = HFGenerator(str(tiny_model_dir))
    with pytest.raises(UserError, match="ft"):
        gen.generate(MESSAGES, adapter="ft")
    with pytest.raises(UserError, match="nope"):
        HFGenerator(str(tiny_model_dir), {"ft": str(tmp_path / "nope")})


def _mock_server(calls: list[dict]):  # noqa: ANN202
    import httpx

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "Qwen/Qwen2.5-7B-Instruct"}, {"id": "ald-ft"}]})
        body = json.loads(request.content)
        calls.append(body)
        text = f"모델 {body['model']} 답변 [tiny-001]"
        if not body["stream"]:
            return httpx.Response(200, json={"choices": [{"message": {"content": text}}]})
        chunks = [f"data: {json.dumps({'choices': [{'delta': {'content': text[i:i + 4]}}]})}\n\n" for i in range(0, len(text), 4)]
        return httpx.Response(200, text="".join(chunks) + "data: [DONE]\n\n")

    return httpx.MockTransport(handler)


def test_openai_generator_routes_adapters_as_model_names() -> None:
    calls: list[dict] = []
    gen = OpenAIGenerator("http://127.0.0.1:9/", transport=_mock_server(calls))
    assert gen.base_url == "http://127.0.0.1:9/v1"
    assert gen.models() == ["base", "Qwen/Qwen2.5-7B-Instruct", "ald-ft"]
    assert gen.generate(MESSAGES, max_new_tokens=7) == "모델 Qwen/Qwen2.5-7B-Instruct 답변 [tiny-001]"
    assert calls[-1]["max_tokens"] == 7 and calls[-1]["temperature"] == 0.0 and calls[-1]["messages"] == MESSAGES
    assert "".join(gen.stream(MESSAGES, adapter="ald-ft")) == "모델 ald-ft 답변 [tiny-001]"
    assert calls[-1]["model"] == "ald-ft" and calls[-1]["stream"] is True


def test_openai_generator_unreachable_is_a_user_error() -> None:
    import httpx

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    gen = OpenAIGenerator("http://127.0.0.1:9/v1", model="m", transport=httpx.MockTransport(refuse))
    with pytest.raises(UserError, match="llm-url"):
        gen.generate(MESSAGES)
