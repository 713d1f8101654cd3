"""GGUF export: the merged fine-tune, read back by transformers' GGUF loader, answers like the HF path."""

from __future__ import annotations

import os

from pathlib import Path

import pytest

from aldlab.errors import UserError
from aldlab.prompts import SYSTEM_PROMPT

PROMPTS = ["ALD 공정은 무엇인가요?", "TMA와 H2O로 Al2O3를 증착합니다.", "퍼지 시간이 부족하면"]


def _random_adapter(model: object, out: Path, std: float, targets: list[str]) -> Path:
    """A LoRA adapter with non-zero B, so merging really changes the weights."""
    import torch
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=targets))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, std)
    peft_model.save_pretrained(str(out))
    return out


@pytest.fixture(scope="module")
def tiny_adapter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import AutoModelForCausalLM

    from aldlab.llm.tiny import build_tiny_model_dir

    model_dir = build_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "model")
    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    return _random_adapter(model, tmp_path_factory.mktemp("adapter") / "ft", 2.0, ["q_proj", "v_proj", "down_proj"])


@pytest.fixture(scope="module")
def merged(tiny_adapter: Path):  # noqa: ANN201
    from aldlab.llm.merge import merge_adapter

    return merge_adapter(tiny_adapter)


def _load_gguf(path: Path):  # noqa: ANN202
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    return model.eval(), tokenizer


def _compare(hf_model: object, gguf_model: object, tokenizer: object, prompts: list[str], new_tokens: int):
    """(max |logit diff| at the last prompt position, greedy continuations equal on every prompt)."""
    import torch

    worst, same = 0.0, True
    for text in prompts:
        ids = torch.tensor([tokenizer(text, add_special_tokens=False).input_ids])
        with torch.inference_mode():
            a = hf_model(ids).logits[0, -1]
            b = gguf_model(ids).logits[0, -1]
            ga = hf_model.generate(ids, max_new_tokens=new_tokens, do_sample=False)
            gb = gguf_model.generate(ids, max_new_tokens=new_tokens, do_sample=False)
        worst = max(worst, float((a - b).abs().max()))
        same = same and torch.equal(ga, gb)
    return worst, same


@pytest.mark.parametrize(("quant", "tolerance"), [("f32", 1e-5), ("f16", 5e-3), ("q8_0", 0.1)])
def test_exported_gguf_reloads_with_the_same_greedy_answer(
    tiny_adapter: Path, merged: object, tmp_path: Path, quant: str, tolerance: float
) -> None:
    from aldlab.llm.gguf_export import export_gguf

    result = export_gguf(tiny_adapter, tmp_path / "gguf", quant)
    assert result.gguf_path == tmp_path / "gguf" / f"model-{quant}.gguf"
    model, tokenizer = _load_gguf(result.gguf_path)
    # the vocabulary written as a gpt2 BPE tokenises exactly like the HF tokenizer
    for text in PROMPTS:
        assert tokenizer(text, add_special_tokens=False).input_ids == merged.tokenizer(text, add_special_tokens=False).input_ids
    diff, same = _compare(merged.model, model, merged.tokenizer, PROMPTS, 12)
    assert diff <= tolerance
    assert same


def _round_trip(model: object, embedding_type: object, weight_type: object):  # noqa: ANN202
    """A copy of `model` whose 2-D weights went through GGML quantization and back."""
    import copy

    import torch
    from gguf import quants

    model = copy.deepcopy(model)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim == 2:
                kind = embedding_type if "embed_tokens" in name else weight_type
                data = param.detach().float().numpy()
                param.copy_(torch.from_numpy(quants.dequantize(quants.quantize(data, kind), kind)))
    return model


def test_q4_0_export_writes_4_bit_weights_and_an_8_bit_embedding(tiny_adapter: Path, merged: object, tmp_path: Path) -> None:
    """The q4_0 GGUF computes exactly what the merged model computes with its weights rounded
    to Q4_0 (the tied embedding, also the output layer, to Q8_0), and is smaller than q8_0.

    Whether 4 bits keep the answers is a question for a trained model, not this random one
    (its logits differ by ~0.1 at most, so any rounding flips its top token):
    `test_embedded_model_q4_0_answers_like_f16` checks that.
    """
    from gguf import GGMLQuantizationType as T
    from gguf import GGUFReader

    from aldlab.llm.gguf_export import export_gguf

    q4 = export_gguf(tiny_adapter, tmp_path / "q4", "q4_0")
    q8 = export_gguf(tiny_adapter, tmp_path / "q8", "q8_0")
    assert q4.gguf_path.name == "model-q4_0.gguf" and q4.gguf_path.stat().st_size < q8.gguf_path.stat().st_size
    types = {t.name: t.tensor_type for t in GGUFReader(str(q4.gguf_path)).tensors}
    assert types["blk.0.attn_q.weight"] == T.Q4_0 and types["blk.1.ffn_down.weight"] == T.Q4_0
    assert types["token_embd.weight"] == T.Q8_0
    model, _ = _load_gguf(q4.gguf_path)
    rounded = _round_trip(merged.model, T.Q8_0, T.Q4_0)
    diff, same = _compare(rounded, model, merged.tokenizer, PROMPTS, 12)
    assert diff <= 1e-4 and same
    diff, _ = _compare(merged.model, model, merged.tokenizer, PROMPTS, 1)
    assert 0 < diff <= 0.2  # 4-bit rounding moves the logits, boundedly


def test_gguf_metadata_follows_llama_cpp_gemma3_conventions(tiny_adapter: Path, merged: object, tmp_path: Path) -> None:
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFReader

    from aldlab.llm.gguf_export import export_gguf

    result = export_gguf(tiny_adapter, tmp_path / "gguf", "f16")
    reader = GGUFReader(str(result.gguf_path))
    fields = {k: f.contents() for k, f in reader.fields.items() if k != "tokenizer.ggml.merges"}
    assert fields["general.architecture"] == "gemma3"
    assert fields["gemma3.block_count"] == 2
    assert fields["gemma3.attention.key_length"] == 16
    assert fields["gemma3.attention.sliding_window"] == 64
    assert fields["tokenizer.ggml.eot_token_id"] == merged.tokenizer.convert_tokens_to_ids("<end_of_turn>")
    assert "<start_of_turn>" in fields["tokenizer.chat_template"]
    tensors = {t.name: t for t in reader.tensors}
    assert "output.weight" not in tensors  # tied: llama.cpp reuses token_embd
    assert len(tensors) == 2 * 13 + 2
    assert tensors["blk.0.attn_q.weight"].tensor_type == GGMLQuantizationType.F16
    assert tensors["blk.0.attn_norm.weight"].tensor_type == GGMLQuantizationType.F32
    # Gemma's RMSNorm scales by (1 + w); llama.cpp's by w, so the file stores 1 + w
    hf_norm = merged.model.state_dict()["model.layers.0.input_layernorm.weight"].numpy()
    assert np.allclose(np.asarray(tensors["blk.0.attn_norm.weight"].data), hf_norm + 1.0)


def test_modelfile_carries_the_trained_template_and_stop_token(tiny_adapter: Path, tmp_path: Path) -> None:
    from aldlab.llm.gguf_export import export_gguf

    result = export_gguf(tiny_adapter, tmp_path / "gguf", "f16")
    text = result.modelfile_path.read_text(encoding="utf-8")
    assert "FROM ./model-f16.gguf\n" in text
    assert 'PARAMETER stop "<end_of_turn>"' in text
    assert "<start_of_turn>model" in text and '$system = printf "%s%s\\n\\n"' in text
    assert f'SYSTEM """{SYSTEM_PROMPT}"""\n' in text  # the system prompt of every training row
    # `ollama run` is closed-book: the Modelfile and the README say how to answer with retrieval
    serve = "aldlab serve --llm-url http://localhost:11434/v1 --llm-model aldlab-ald"
    assert serve in text and result.readme_path is not None and serve in result.readme_path.read_text(encoding="utf-8")
    assert (tmp_path / "gguf" / "aldlab_export.json").exists()
    assert not list(tmp_path.glob(".*tmp"))  # written atomically, nothing left behind


def test_bad_quant_and_non_gemma_models_are_user_errors(tiny_adapter: Path, tmp_path: Path) -> None:
    from types import SimpleNamespace

    from aldlab.llm.gguf_export import check_quant, write_gemma3_gguf

    with pytest.raises(UserError) as error:
        check_quant("q4_k_m")
    assert "llama-quantize" in str(error.value.hint)  # the k-quants need llama.cpp's quantizer
    assert check_quant("Q8-0") == "q8_0" and check_quant("Q4_0") == "q4_0"
    fake = SimpleNamespace(config=SimpleNamespace(model_type="qwen2"))
    with pytest.raises(UserError, match="Gemma 3"):
        write_gemma3_gguf(fake, None, tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()


def test_layer_types_llama_cpp_cannot_express_are_refused(tmp_path: Path) -> None:
    """GGUF has no key for which layers slide; llama.cpp fixes every 6th as global."""
    from types import SimpleNamespace

    from transformers import Gemma3TextConfig

    from aldlab.llm.gguf_export import llama_cpp_layer_types, write_gemma3_gguf

    for n_layers in (2, 6, 18, 26):  # transformers' default layout is the one llama.cpp assumes
        assert Gemma3TextConfig(num_hidden_layers=n_layers).layer_types == llama_cpp_layer_types(n_layers)
    assert llama_cpp_layer_types(12).count("full_attention") == 2
    layer_types = ["full_attention", "sliding_attention"]
    config = SimpleNamespace(model_type="gemma3_text", sliding_window=64, layer_types=layer_types)
    with pytest.raises(UserError, match="layer_types"):
        write_gemma3_gguf(SimpleNamespace(config=config), None, tmp_path / "x.gguf")
    assert not list(tmp_path.iterdir())


def _load_gguf_model(path: Path):  # noqa: ANN202
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()


def _tokens(path: Path) -> list[str]:
    from gguf import GGUFReader

    return list(GGUFReader(str(path)).fields["tokenizer.ggml.tokens"].contents())


@pytest.mark.slow
def test_embedded_model_gguf_export_matches_hf_greedy(tmp_path: Path) -> None:
    """The real thing: embedded gemma-3-270m + a LoRA -> f16 GGUF -> same greedy answers.

    The GGUF's tokenizer is not rebuilt through transformers here (recovering 262k merges
    takes minutes); its vocabulary is checked against the shipped GGUF it was copied from.
    """
    from aldlab.llm.gguf_export import embedded_gguf_path, export_gguf
    from aldlab.prompts import build_messages
    from aldlab.llm.merge import merge_adapter
    from aldlab.llm.model import load_model

    adapter = _random_adapter(load_model("embedded"), tmp_path / "ft", 0.02, ["q_proj", "v_proj"])
    result = export_gguf(adapter, tmp_path / "gguf", "f16")
    merged = merge_adapter(adapter)
    assert _tokens(result.gguf_path) == _tokens(embedded_gguf_path())
    model = _load_gguf_model(result.gguf_path)
    texts = [
        merged.tokenizer.apply_chat_template(build_messages(q), tokenize=False, add_generation_prompt=True)
        for q in ("ALD에서 퍼지 단계는 왜 필요한가요?", "TMA와 물로 Al2O3를 증착할 때 성장률은?")
    ]
    diff, same = _compare(merged.model, model, merged.tokenizer, texts, 16)
    assert same, f"greedy answers differ (max logit diff {diff:.4f})"
    assert diff < 0.1  # measured 0.012 for f16


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("ALDLAB_CHECK_Q4"),
    reason="4 min to re-measure a known result; set ALDLAB_CHECK_Q4=1 after changing the 4-bit writer",
)
@pytest.mark.xfail(
    strict=True,
    reason="measured: q4_0 leaves f16 at the first token on all 3 prompts (max logit diff 9.3) and "
    "degenerates; the README and gguf_export recommend q8_0",
)
def test_embedded_model_q4_0_answers_like_f16(tmp_path: Path) -> None:
    """4-bit checked on the real thing: embedded gemma-3-270m + a LoRA, RAG prompts, greedy
    answers of the q4_0 export against the f16 export (both read back by transformers).

    It fails (4 min): plain 4-bit rounding is too coarse for this 270M model. Strict, so a
    better 4-bit writer shows up as XPASS and the advice to use q8_0 gets revisited.
    """
    from aldlab.llm.gguf_export import export_gguf
    from aldlab.llm.merge import merge_adapter
    from aldlab.llm.model import load_model
    from aldlab.prompts import build_messages
    from aldlab.serve.testing import TINY_DOCUMENTS

    adapter = _random_adapter(load_model("embedded"), tmp_path / "ft", 0.02, ["q_proj", "v_proj"])
    f16 = _load_gguf_model(export_gguf(adapter, tmp_path / "f16", "f16").gguf_path)
    q4 = _load_gguf_model(export_gguf(adapter, tmp_path / "q4", "q4_0").gguf_path)
    tokenizer = merge_adapter(adapter).tokenizer
    questions = ("ALD에서 퍼지 단계는 왜 필요한가요?", "TMA는 어떤 전구체인가요?", "ALD의 자기제한 반응이란?")
    texts = [
        tokenizer.apply_chat_template(build_messages(q, TINY_DOCUMENTS), tokenize=False, add_generation_prompt=True)
        for q in questions
    ]
    diff, same = _compare(f16, q4, tokenizer, texts, 24)
    assert same, f"q4_0 greedy answers differ from f16 (max logit diff {diff:.3f})"
