"""llama.cpp engine: engine choice, stop tokens and streaming (fake llama_cpp), and — when
llama-cpp-python is installed — the exported GGUF run by llama.cpp matching transformers."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from aldlab.errors import UserError
from aldlab.llm import llamacpp
from aldlab.llm.generator import TrackedStream
from aldlab.llm.llamacpp import LlamaCppGenerator, resolve_engine

MESSAGES = [{"role": "system", "content": "ALD 전문가"}, {"role": "user", "content": "TMA는 무엇인가요?"}]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny Gemma 3 shaped so llama.cpp runs it as transformers does.

    - Six layers, not the builder's two: llama.cpp's Gemma 3 makes every 6th layer global
      (`set_swa_pattern(6)`), so two layers are all sliding-window, its global KV cache has
      no layer, and llama-cpp-python 0.3.16 segfaults in the first decode. Layer 5 is global
      in both engines (transformers derives the same `layer_types`).
    - Attention scale 1/sqrt(head_dim), as llama.cpp computes it (the converter writes no
      query_pre_attn_scalar).
    """
    from aldlab.llm.tiny import build_tiny_model_dir

    model_dir = tmp_path_factory.mktemp("tiny") / "model"
    return build_tiny_model_dir(model_dir, num_hidden_layers=6, query_pre_attn_scalar=16)


@pytest.fixture(scope="module")
def tokenizer(tiny_dir: Path):  # noqa: ANN201
    from aldlab.llm.model import load_tokenizer

    return load_tokenizer(str(tiny_dir))


class FakeLlama:
    """Stands in for llama_cpp.Llama: yields a scripted token stream, records the prompt."""

    script: list[int] = []
    prompts: list[list[int]] = []

    def __init__(self, model_path: str, **kwargs: object) -> None:
        self.model_path = model_path

    def generate(self, tokens: list[int], **kwargs: object):  # noqa: ANN201
        FakeLlama.prompts.append(list(tokens))
        assert kwargs["temp"] == 0.0 and kwargs["repeat_penalty"] == 1.0  # greedy, no penalty
        yield from FakeLlama.script


@pytest.fixture()
def fake_llama_cpp(monkeypatch: pytest.MonkeyPatch) -> type[FakeLlama]:
    module = types.ModuleType("llama_cpp")
    module.Llama = FakeLlama  # type: ignore[attr-defined]
    module.llama_log_callback = lambda function: function  # type: ignore[attr-defined]
    module.llama_log_set = lambda callback, user_data: None  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "llama_cpp", module)
    monkeypatch.setattr(llamacpp, "llama_cpp_available", lambda: True)
    FakeLlama.prompts = []
    return FakeLlama


def test_auto_engine_is_llama_cpp_only_when_installed_and_embedded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(llamacpp, "_has_cuda", lambda: False)
    monkeypatch.setattr(llamacpp, "llama_cpp_available", lambda: False)
    assert resolve_engine("auto", "embedded") == "transformers"
    monkeypatch.setattr(llamacpp, "llama_cpp_available", lambda: True)
    assert resolve_engine("auto", "embedded") == "llama.cpp"
    assert resolve_engine("auto", None) == "llama.cpp"
    assert resolve_engine("auto", str(tmp_path)) == "transformers"  # some other local model
    assert resolve_engine("auto", "Qwen/Qwen2.5-7B-Instruct") == "transformers"
    assert resolve_engine("llamacpp", "Qwen/Qwen2.5-7B-Instruct") == "llama.cpp"  # forced
    monkeypatch.setattr(llamacpp, "_has_cuda", lambda: True)
    assert resolve_engine("auto", "embedded") == "transformers"  # a GPU keeps transformers
    with pytest.raises(UserError):
        resolve_engine("vllm", None)


def test_the_speed_hint_is_shown_only_when_llama_cpp_would_help(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llamacpp, "_has_cuda", lambda: False)
    monkeypatch.setattr(llamacpp, "llama_cpp_available", lambda: False)
    hint = llamacpp.speed_hint("auto", "embedded")
    assert hint and ".[cpu]" in hint and "컴파일러" in hint
    assert llamacpp.speed_hint("transformers", "embedded") is None  # chosen on purpose
    assert llamacpp.speed_hint("auto", "Qwen/Qwen2.5-7B-Instruct") is None  # llama.cpp would not run it
    monkeypatch.setattr(llamacpp, "llama_cpp_available", lambda: True)
    assert llamacpp.speed_hint("auto", "embedded") is None  # already fast


def test_missing_llama_cpp_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llamacpp, "llama_cpp_available", lambda: False)
    with pytest.raises(UserError, match="llama-cpp-python"):
        LlamaCppGenerator("embedded")


def test_generation_stops_at_end_of_turn_and_streams_whole_characters(
    fake_llama_cpp: type[FakeLlama], tokenizer: object, tmp_path: Path
) -> None:
    eot = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    answer_ids = tokenizer("퍼지 시간이 부족하면 CVD", add_special_tokens=False)["input_ids"]
    fake_llama_cpp.script = [*answer_ids, eot, *answer_ids]  # must stop at <end_of_turn>
    gen = LlamaCppGenerator(None, None, gguf_paths={"base": tmp_path / "m.gguf"}, tokenizer=tokenizer)

    assert gen.generate(MESSAGES, max_new_tokens=100) == "퍼지 시간이 부족하면 CVD"
    pieces = list(gen.stream(MESSAGES, max_new_tokens=100))
    assert "".join(pieces) == "퍼지 시간이 부족하면 CVD"
    assert all("\ufffd" not in p for p in pieces)  # byte tokens of a syllable are held back
    assert gen.generate(MESSAGES, max_new_tokens=3) == tokenizer.decode(answer_ids[:3]).strip()
    # Why it ended: at <end_of_turn> ("stop") or at the budget ("length"), streamed or not.
    assert gen.reply(MESSAGES, max_new_tokens=100).stop_reason == "stop"
    assert gen.reply(MESSAGES, max_new_tokens=3).stop_reason == "length"
    cut = TrackedStream(gen.stream(MESSAGES, max_new_tokens=3))
    assert "".join(cut) == tokenizer.decode(answer_ids[:3]) and cut.stop_reason == "length"
    ended = TrackedStream(gen.stream(MESSAGES, max_new_tokens=100))
    assert list(ended) and ended.stop_reason == "stop"

    text = tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    expected = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert fake_llama_cpp.prompts[0] == expected  # the trained chat template, one <bos>
    assert expected[0] == tokenizer.bos_token_id and expected.count(tokenizer.bos_token_id) == 1


def test_unknown_adapter_and_foreign_base_are_user_errors(fake_llama_cpp: type[FakeLlama], tokenizer: object) -> None:
    gen = LlamaCppGenerator("Qwen/Qwen2.5-7B-Instruct", None, tokenizer=tokenizer)
    assert gen.models() == ["base"]
    with pytest.raises(UserError, match="Unknown"):
        gen.generate(MESSAGES, max_new_tokens=4, adapter="nope")
    with pytest.raises(UserError, match="embedded base"):
        gen.generate(MESSAGES, max_new_tokens=4)


def test_adapter_gguf_is_exported_once_and_cached(tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aldlab.llm import gguf_export

    adapter = tmp_path / "ft"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"weights v1")
    calls: list[Path] = []

    def fake_export(adapter_dir: Path, output: Path, quant: str) -> None:
        calls.append(Path(output))
        Path(output).mkdir(parents=True, exist_ok=True)
        (Path(output) / f"model-{quant}.gguf").write_bytes(b"GGUF")

    monkeypatch.setattr(gguf_export, "export_gguf", fake_export)
    first = llamacpp.adapter_gguf(adapter, "q8_0")
    assert llamacpp.adapter_gguf(adapter, "q8_0") == first and len(calls) == 1
    (adapter / "adapter_model.safetensors").write_bytes(b"weights v2")  # retrained: new file
    assert llamacpp.adapter_gguf(adapter, "q8_0") != first and len(calls) == 2


@pytest.mark.real_llama_cpp
@pytest.mark.skipif(not llamacpp.llama_cpp_available(), reason="llama-cpp-python not installed")
def test_llama_cpp_runs_the_exported_gguf_like_transformers(tiny_dir: Path, tmp_path: Path) -> None:
    """Real llama.cpp on the f32 export of a tiny fine-tune: same greedy answer as HF."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from aldlab.llm.gguf_export import export_gguf
    from aldlab.llm.hf_generate import HFGenerator

    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny_dir)), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 1.0)
    peft_model.save_pretrained(str(tmp_path / "ft"))
    exported = export_gguf(tmp_path / "ft", tmp_path / "gguf", "f32")
    hf = HFGenerator(str(tiny_dir), {"ft": str(tmp_path / "ft")})
    cpp = LlamaCppGenerator(str(tiny_dir), None, gguf_paths={"ft": exported.gguf_path})
    for question in ("TMA는 무엇인가요?", "ALD 윈도우는?", "퍼지 시간"):
        messages = [{"role": "user", "content": question}]
        assert cpp.generate(messages, max_new_tokens=12, adapter="ft") == hf.generate(messages, max_new_tokens=12, adapter="ft")
