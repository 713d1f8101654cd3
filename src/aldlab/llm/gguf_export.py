"""`export_gguf`: a fine-tuned Gemma 3 as one GGUF file + an Ollama Modelfile.

llama.cpp and Ollama (what people run on CPUs) read GGUF, not HF safetensors. We merge the
LoRA adapter into the base (`llm.merge.merge_adapter`) and write the merged weights with
the `gguf` package, following llama.cpp's `convert_hf_to_gguf.py` Gemma3 conventions:

- tensor names from gguf's own HF->GGUF name map (`blk.N.attn_q`, `token_embd`, ...), the tied
  `lm_head` left out (llama.cpp reuses `token_embd`);
- every `*norm.weight` stored as `1 + w`, because Gemma3RMSNorm multiplies by `1 + weight`
  while llama.cpp multiplies by the stored value (transformers' GGUF loader subtracts it again);
- 1-D tensors always F32; 2-D weights F32, F16, Q8_0 or Q4_0 as asked; with Q4_0 the tied
  embedding (also the output layer) stays Q8_0, as llama.cpp's own Q4_0 keeps it at Q6_K,
  which the `gguf` package cannot write;
- `gemma3.*` hyper-parameters named as the converter names them;
- no key says which layers use sliding-window attention: llama.cpp makes every 6th layer
  global (`set_swa_pattern(6)`, as in every released Gemma 3), so a model with other
  `layer_types` is refused rather than written to run differently.

The tokenizer is copied field by field from the GGUF the base came from when there is one
(the embedded model ships as a GGUF, so its vocabulary, scores and token types are reused
bit for bit); a byte-level BPE `tokenizer.json` (the tiny test model) is written as a
`gpt2` vocabulary. The chat template the adapter was trained with goes into
`tokenizer.chat_template` and the Modelfile, and `<end_of_turn>` is the stop token. The
Modelfile's SYSTEM is `aldlab.prompts.SYSTEM_PROMPT`, the system prompt of every training row.

`ollama run` answers closed-book: no KB passages reach the model, the setting the eval
scores lowest. The README.md written beside the GGUF says how to answer with retrieval:
`aldlab serve --llm-url http://localhost:11434/v1 --llm-model NAME`.

4-bit: q4_0 is written here (the `gguf` package quantizes it in numpy), but checked on the
embedded gemma-3-270m (+ a small random LoRA, RAG prompts, transformers reading both
files back) its greedy answers leave the f16 ones at the first token (max logit diff 9.3)
and degenerate ("[001] 1000000…"), for a file of 230 MiB against q8_0's 278 MiB (the
8-bit embedding is most of it): use q8_0. The k-quants (q4_K_M) need llama.cpp's
quantizer, which the `gguf` package lacks: `llama-quantize model-f16.gguf out.gguf Q4_K_M`.

Only Gemma 3 is written here. Other architectures (Qwen2.5 on a GPU machine): export with
`aldlab export --merge` and run llama.cpp's own `convert_hf_to_gguf.py` on that directory.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aldlab.errors import UserError
from aldlab.files import atomic_write_json, atomic_write_text
from aldlab.llm.chat_template import single_token_id

#: --quant choices -> (GGML tensor type for 2-D weights, GGUF general.file_type).
QUANTS = ("f32", "f16", "q8_0", "q4_0")
MODELFILE_NAME = "Modelfile"
README_NAME = "README.md"
#: The name the Modelfile and README suggest for `ollama create`.
OLLAMA_NAME = "aldlab-ald"
GEMMA3_MODEL_TYPES = ("gemma3_text", "gemma3")
#: llama.cpp's Gemma 3: layer i is global when (i + 1) % 6 == 0, sliding otherwise.
LLAMA_CPP_GLOBAL_EVERY = 6


@dataclass
class GGUFExport:
    """What `export_gguf` wrote."""

    output_dir: Path
    gguf_path: Path
    modelfile_path: Path
    quant: str
    #: How to run it with Ollama, and with retrieval through `aldlab serve --llm-url`.
    readme_path: Path | None = None


def check_quant(quant: str) -> str:
    name = quant.lower().replace("-", "_")
    if name not in QUANTS:
        raise UserError(
            f"지원하지 않는 GGUF 형식입니다: {quant}",
            f"Unsupported GGUF type: {quant}",
            hint=f"다음 중 하나 / one of: {', '.join(QUANTS)}"
            + (" (q4_K_M: f16으로 내보낸 뒤 llama.cpp의 llama-quantize model-f16.gguf out.gguf Q4_K_M "
               "/ export f16, then run llama.cpp's llama-quantize)" if name.startswith("q4_k") else ""),
        )
    return name


def _ggml_types(quant: str) -> tuple[Any, Any]:
    from gguf import GGMLQuantizationType, LlamaFileType

    return {
        "f32": (GGMLQuantizationType.F32, LlamaFileType.ALL_F32),
        "f16": (GGMLQuantizationType.F16, LlamaFileType.MOSTLY_F16),
        "q8_0": (GGMLQuantizationType.Q8_0, LlamaFileType.MOSTLY_Q8_0),
        "q4_0": (GGMLQuantizationType.Q4_0, LlamaFileType.MOSTLY_Q4_0),
    }[quant]


# --------------------------------------------------------------------------- export
def export_gguf(
    adapter_dir: str | Path, output: str | Path, quant: str = "f16", base_model: str | None = None
) -> GGUFExport:
    """Merge `adapter_dir` into its base and write `output/` = model-QUANT.gguf + Modelfile + manifest."""
    from aldlab.llm.merge import merge_adapter

    quant = check_quant(quant)
    merged = merge_adapter(adapter_dir, base_model)
    out = Path(output).expanduser()
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    gguf_name = f"model-{quant}.gguf"
    source = source_gguf_for(merged.base_name)
    write_gemma3_gguf(
        merged.model, merged.tokenizer, tmp / gguf_name, quant,
        tokenizer_gguf=source, name=f"aldlab {merged.adapter_dir.name}",
    )
    stops = [merged.tokenizer.convert_ids_to_tokens(i) for i in merged.end_of_turn_ids]
    atomic_write_text(tmp / MODELFILE_NAME, ollama_modelfile(gguf_name, stops))
    atomic_write_text(tmp / README_NAME, export_readme(gguf_name, quant))
    atomic_write_json(tmp / "aldlab_export.json", _manifest(merged, quant, gguf_name, source))
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return GGUFExport(out, out / gguf_name, out / MODELFILE_NAME, quant, out / README_NAME)


def source_gguf_for(base_name: str) -> Path | None:
    """The GGUF a base model was loaded from (the embedded model), else None."""
    from aldlab.llm.model import EMBEDDED_ALIASES, embedded_model_dir

    embedded = embedded_model_dir()
    if base_name in EMBEDDED_ALIASES or Path(base_name).expanduser().resolve() == embedded.resolve():
        return embedded_gguf_path()
    return None


def embedded_gguf_path() -> Path:
    """The embedded model's original Q4_K_M GGUF (assembled once from the PyPI package)."""
    from aldlab.llm.model import embedded_gguf_package, embedded_model_dir

    pkg = embedded_gguf_package()
    target = embedded_model_dir().parent / pkg.MODEL_NAME
    if target.exists():
        return target
    return Path(pkg.assemble(target))


def _manifest(merged: Any, quant: str, gguf_name: str, source: Path | None) -> dict[str, Any]:
    import gguf

    from aldlab.files import sha256_file

    return {
        "kind": "aldlab.export.gguf",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "adapter_dir": str(merged.adapter_dir),
        "adapter_sha256": sha256_file(merged.adapter_dir / "adapter_model.safetensors"),
        "base_model": merged.base_name,
        "gguf": gguf_name,
        "quant": quant,
        "tokenizer_from": str(source) if source else "tokenizer.json",
        "end_of_turn_token_ids": merged.end_of_turn_ids,
        "versions": {"gguf": getattr(gguf, "__version__", "unknown")},
    }


# --------------------------------------------------------------------------- writer
def write_gemma3_gguf(
    model: Any, tokenizer: Any, path: str | Path, quant: str = "f16", *,
    tokenizer_gguf: Path | None = None, name: str = "aldlab model",
) -> Path:
    """Write a (merged) Gemma3ForCausalLM as one GGUF file, atomically."""
    import gguf

    _require_gemma3(model.config)
    _require_llama_cpp_layer_types(model.config)
    quant = check_quant(quant)
    tensor_type, file_type = _ggml_types(quant)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    writer = gguf.GGUFWriter(str(tmp), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.GEMMA3])
    writer.add_name(name)
    _add_hparams(writer, model.config)
    writer.add_file_type(int(file_type))
    if quant in ("q8_0", "q4_0"):
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    n_vocab = _add_tokenizer(writer, tokenizer, tokenizer_gguf)
    for gguf_name, data, raw_type in _gguf_tensors(model, tensor_type, n_vocab):
        writer.add_tensor(gguf_name, data, raw_dtype=raw_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, path)
    return path


def _require_gemma3(config: Any) -> None:
    if getattr(config, "model_type", None) not in GEMMA3_MODEL_TYPES:
        raise UserError(
            f"GGUF 직접 내보내기는 Gemma 3만 지원합니다 (이 모델: {getattr(config, 'model_type', '?')}).",
            f"Direct GGUF export supports Gemma 3 only (this model: {getattr(config, 'model_type', '?')}).",
            hint="aldlab export ADAPTER --merge -o merged/ 후 llama.cpp의 convert_hf_to_gguf.py merged/ 를 실행하세요 "
            "/ export with --merge, then run llama.cpp's convert_hf_to_gguf.py on that directory",
        )


def llama_cpp_layer_types(n_layers: int) -> list[str]:
    """The attention type llama.cpp gives each Gemma 3 layer, whatever the GGUF says."""
    return [
        "full_attention" if (i + 1) % LLAMA_CPP_GLOBAL_EVERY == 0 else "sliding_attention"
        for i in range(n_layers)
    ]


def _require_llama_cpp_layer_types(config: Any) -> None:
    layer_types = getattr(config, "layer_types", None)
    if not layer_types or not getattr(config, "sliding_window", None):
        return
    expected = llama_cpp_layer_types(len(layer_types))
    if list(layer_types) != expected:
        raise UserError(
            "이 모델의 슬라이딩 윈도 층 배치(config.json layer_types)는 GGUF로 옮길 수 없습니다: "
            "llama.cpp는 6번째 층마다 전역 어텐션으로 고정합니다.",
            "This model's config.json `layer_types` cannot be carried by GGUF: llama.cpp makes "
            "every 6th Gemma 3 layer global and the others sliding-window.",
            hint="층 i는 (i+1) % 6 == 0 일 때만 full_attention / layer i is full_attention iff (i+1) % 6 == 0",
        )


def _rope_thetas(config: Any) -> tuple[float, float]:
    """(global, sliding-window) RoPE bases; transformers 5 nests them per layer type."""
    params = getattr(config, "rope_parameters", None) or {}
    full = params.get("full_attention", params) if isinstance(params, dict) else {}
    local = params.get("sliding_attention", {}) if isinstance(params, dict) else {}
    global_theta = full.get("rope_theta", getattr(config, "rope_theta", 1_000_000.0))
    local_theta = local.get("rope_theta", getattr(config, "rope_local_base_freq", 10_000.0))
    return float(global_theta), float(local_theta)


def _linear_rope_factor(config: Any) -> float | None:
    params = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    full = params.get("full_attention", params) if isinstance(params, dict) else {}
    if full.get("rope_type") == "linear" and full.get("factor"):
        return float(full["factor"])
    return None


def _add_hparams(writer: Any, config: Any) -> None:
    """gemma3.* keys as convert_hf_to_gguf.py's Gemma3Model.set_gguf_parameters writes them."""
    import gguf

    global_theta, local_theta = _rope_thetas(config)
    writer.add_context_length(int(config.max_position_embeddings))
    writer.add_embedding_length(int(config.hidden_size))
    writer.add_block_count(int(config.num_hidden_layers))
    writer.add_feed_forward_length(int(config.intermediate_size))
    writer.add_head_count(int(config.num_attention_heads))
    writer.add_head_count_kv(int(config.num_key_value_heads))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_key_length(int(config.head_dim))
    writer.add_value_length(int(config.head_dim))
    writer.add_rope_freq_base(global_theta)
    writer.add_rope_freq_base_swa(local_theta)
    if getattr(config, "final_logit_softcapping", None):
        writer.add_final_logit_softcapping(float(config.final_logit_softcapping))
    if getattr(config, "sliding_window", None):
        writer.add_sliding_window(int(config.sliding_window))
    if (factor := _linear_rope_factor(config)) is not None:
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(factor)


def _gguf_tensors(model: Any, tensor_type: Any, n_vocab: int) -> Any:
    """Yield (gguf name, numpy data, raw GGML type or None) for every weight."""
    import gguf

    config = model.config
    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GEMMA3, int(config.num_hidden_layers))
    tied = bool(getattr(config, "tie_word_embeddings", True))
    for hf_name, tensor in model.state_dict().items():
        if tied and hf_name == "lm_head.weight":
            continue
        stem, _, suffix = hf_name.rpartition(".")
        gguf_stem = name_map.get_name(stem)
        if gguf_stem is None:
            raise UserError(
                f"GGUF 이름으로 바꿀 수 없는 텐서: {hf_name}",
                f"No GGUF name for tensor {hf_name!r}",
                hint="Gemma 3 텍스트 모델만 지원합니다 / only Gemma 3 text models are supported",
            )
        data = tensor.detach().float().cpu().numpy()
        if gguf_stem == "token_embd":
            data = _trim_vocab(data, n_vocab)
        if hf_name.endswith("norm.weight"):
            data = data + 1.0  # Gemma3RMSNorm scales by (1 + w); llama.cpp by w
        yield (f"{gguf_stem}.{suffix}", *_encode(data, _tensor_type(gguf_stem, tensor_type)))


def _tensor_type(gguf_stem: str, tensor_type: Any) -> Any:
    """The asked type, except Q8_0 for the embedding under Q4_0.

    Gemma 3 ties its output layer to `token_embd` (262k rows on the embedded model, over
    half its weights): 4 bits there would blur every next-token choice, so llama.cpp keeps
    the output layer at 6 bits or more in its own Q4_0 files.
    """
    from gguf import GGMLQuantizationType

    if gguf_stem == "token_embd" and tensor_type == GGMLQuantizationType.Q4_0:
        return GGMLQuantizationType.Q8_0
    return tensor_type


def _trim_vocab(embedding: Any, n_vocab: int) -> Any:
    """Drop padding rows past the real vocabulary (as the converter does); never pad."""
    if embedding.shape[0] < n_vocab:
        raise UserError(
            f"임베딩 행 수({embedding.shape[0]})가 토크나이저 어휘({n_vocab})보다 적습니다.",
            f"Embedding has {embedding.shape[0]} rows but the tokenizer has {n_vocab} tokens.",
            hint="어댑터와 토크나이저가 같은 기반 모델인지 확인하세요 / check adapter and tokenizer share one base",
        )
    return embedding[:n_vocab]


def _encode(data: Any, tensor_type: Any) -> tuple[Any, Any]:
    """1-D tensors stay F32 (llama.cpp does the same); 2-D weights take the asked type."""
    import numpy as np
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, quants

    if data.ndim <= 1 or tensor_type == GGMLQuantizationType.F32:
        return data.astype(np.float32), None
    if tensor_type == GGMLQuantizationType.F16:
        return data.astype(np.float16), None
    block_size = GGML_QUANT_SIZES[tensor_type][0]
    if data.shape[-1] % block_size:  # row not a whole number of blocks: keep it exact-ish
        return data.astype(np.float16), None
    return quants.quantize(data.astype(np.float32), tensor_type), tensor_type


# --------------------------------------------------------------------------- tokenizer
def _add_tokenizer(writer: Any, tokenizer: Any, tokenizer_gguf: Path | None) -> int:
    """Write tokenizer.* keys; returns the vocabulary size."""
    if tokenizer_gguf is not None:
        n_vocab = _copy_gguf_tokenizer(writer, tokenizer_gguf)
    else:
        n_vocab = _add_bpe_tokenizer(writer, tokenizer)
    if getattr(tokenizer, "chat_template", None):
        writer.add_chat_template(tokenizer.chat_template)
    eot = single_token_id(tokenizer, "<end_of_turn>")
    if eot is not None:
        writer.add_eot_token_id(int(eot))
    return n_vocab


def _copy_gguf_tokenizer(writer: Any, source: Path) -> int:
    """Copy every tokenizer.* field of `source` (vocabulary, scores, types, special ids)."""
    from gguf import GGUFReader, GGUFValueType

    reader = GGUFReader(str(source))
    n_vocab = 0
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer.") or key == "tokenizer.chat_template":
            continue
        vtype = field.types[0]
        sub_type = field.types[-1] if vtype == GGUFValueType.ARRAY else None
        value = field.contents()
        writer.add_key_value(key, value, vtype, sub_type=sub_type)
        if key == "tokenizer.ggml.tokens":
            n_vocab = len(value)
    return n_vocab


def _add_bpe_tokenizer(writer: Any, tokenizer: Any) -> int:
    """A byte-level BPE tokenizer.json as a llama.cpp `gpt2` vocabulary (tokens, types, merges)."""
    from gguf import TokenType

    spec = json.loads(tokenizer.backend_tokenizer.to_str()) if hasattr(tokenizer, "backend_tokenizer") else {}
    model = spec.get("model", {})
    if model.get("type") != "BPE" or not _is_byte_level(spec):
        raise UserError(
            "이 토크나이저는 GGUF로 직접 옮길 수 없습니다 (byte-level BPE가 아님).",
            "This tokenizer cannot be written to GGUF directly (not byte-level BPE).",
            hint="llama.cpp의 convert_hf_to_gguf.py를 --merge 결과에 실행하세요 "
            "/ run llama.cpp's convert_hf_to_gguf.py on the --merge output",
        )
    vocab = tokenizer.get_vocab()
    by_id = sorted(vocab.items(), key=lambda item: item[1])
    if [i for _, i in by_id] != list(range(len(by_id))):
        raise UserError("토크나이저 id에 빈 곳이 있습니다.", "Tokenizer ids are not contiguous.")
    added = {t["content"]: t for t in spec.get("added_tokens", [])}
    tokens, types = [], []
    for token, _ in by_id:
        tokens.append(token)
        if token in added:
            types.append(TokenType.CONTROL if added[token].get("special") else TokenType.USER_DEFINED)
        else:
            types.append(TokenType.NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([int(t) for t in types])
    writer.add_token_merges(merges)
    _add_special_ids(writer, tokenizer)
    return len(tokens)


def _is_byte_level(spec: dict[str, Any]) -> bool:
    text = json.dumps(spec.get("pre_tokenizer")) + json.dumps(spec.get("decoder"))
    return "ByteLevel" in text


def _add_special_ids(writer: Any, tokenizer: Any) -> None:
    for attr, add in (
        ("bos_token_id", writer.add_bos_token_id),
        ("eos_token_id", writer.add_eos_token_id),
        ("unk_token_id", writer.add_unk_token_id),
        ("pad_token_id", writer.add_pad_token_id),
    ):
        value = getattr(tokenizer, attr, None)
        if value is not None:
            add(int(value))
    bos = tokenizer.bos_token_id
    adds_bos = bos is not None and tokenizer("a").input_ids[:1] == [bos]
    writer.add_add_bos_token(bool(adds_bos))
    writer.add_add_eos_token(False)


# --------------------------------------------------------------------------- Ollama
#: Ollama (Go text/template) rendering of llm.chat_template.GEMMA_TEMPLATE: system text
#: folded into the first user turn followed by a blank line, the assistant speaks as `model`,
#: every turn closed by <end_of_turn>. BOS comes from the GGUF's add_bos_token.
OLLAMA_GEMMA_TEMPLATE = """{{- $system := "" }}
{{- range .Messages }}{{ if eq .Role "system" }}{{ $system = printf "%s%s\\n\\n" $system .Content }}{{ end }}{{ end }}
{{- $first := true }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<start_of_turn>user
{{ if $first }}{{ $system }}{{ end }}{{ .Content }}<end_of_turn>
{{ if $last }}<start_of_turn>model
{{ end }}
{{- $first = false }}
{{- else if eq .Role "assistant" }}<start_of_turn>model
{{ .Content }}{{ if not $last }}<end_of_turn>
{{ end }}
{{- $first = false }}
{{- end }}
{{- end }}"""


def ollama_modelfile(gguf_name: str, stop_tokens: list[str], *, temperature: float = 0.0, num_ctx: int = 4096) -> str:
    """An Ollama Modelfile: `ollama create aldlab-ald -f Modelfile` in the export directory.

    SYSTEM is the system prompt every training row had (Ollama uses it when a request
    brings none; `aldlab serve --llm-url` sends the same text itself).
    """
    from aldlab.prompts import SYSTEM_PROMPT

    if '"""' in SYSTEM_PROMPT:
        raise ValueError('SYSTEM_PROMPT contains """, which ends a Modelfile SYSTEM block')
    lines = [
        "# aldlab export: 미세조정된 Gemma 3 / fine-tuned Gemma 3",
        f"# ollama create {OLLAMA_NAME} -f Modelfile && ollama run {OLLAMA_NAME}",
        "# ollama run 은 KB 없이 답합니다 (closed-book). 검색과 함께 / with retrieval:",
        f"#   aldlab serve --llm-url http://localhost:11434/v1 --llm-model {OLLAMA_NAME}",
        f"FROM ./{gguf_name}",
        f'TEMPLATE """{OLLAMA_GEMMA_TEMPLATE}"""',
        f'SYSTEM """{SYSTEM_PROMPT}"""',
    ]
    lines += [f'PARAMETER stop "{token}"' for token in stop_tokens if token]
    lines += [f"PARAMETER temperature {temperature:g}", f"PARAMETER num_ctx {num_ctx}"]
    return "\n".join(lines) + "\n"


def export_readme(gguf_name: str, quant: str) -> str:
    """README.md of an export: Ollama and llama.cpp commands, and why to serve it with retrieval."""
    name = OLLAMA_NAME
    return f"""# aldlab GGUF export ({quant})

`{gguf_name}`: the fine-tuned adapter merged into its base model; `Modelfile`: the chat
template it was trained with, its system prompt (`aldlab.prompts.SYSTEM_PROMPT`), the
`<end_of_turn>` stop token and temperature 0.

## 검색과 함께 쓰기 / With retrieval (recommended)

The model was trained to answer from KB passages given in the prompt. `ollama run` gives it
none: it answers closed-book, from its weights alone, the setting the evaluation scores
lowest. Let aldlab retrieve and let Ollama generate:

```bash
ollama create {name} -f Modelfile
aldlab serve --llm-url http://localhost:11434/v1 --llm-model {name}
```

`aldlab serve` retrieves from its KB, builds the prompt the model was trained with, calls
Ollama's OpenAI-compatible API and cites the passages (web UI at http://127.0.0.1:8000/,
OpenAI API at http://127.0.0.1:8000/v1, e.g. for Open WebUI). `aldlab ask --llm-url
http://localhost:11434/v1 --llm-model {name} "질문"` does the same for one question.
When Ollama holds other models too, `aldlab serve` lists them all and answers with the
first one Ollama lists unless a request names a model: choose `{name}:latest` (or
`base`, which is `--llm-model`) in the model menu.

검색 없이 / closed-book (no KB): `ollama run {name}`, or llama.cpp:
`llama-cli -m {gguf_name} -cnv`.

## 4-bit

`aldlab export ADAPTER --gguf --quant q4_0` writes a 4-bit file (the tied embedding, also
the output layer, stays 8-bit), but on the embedded gemma-3-270m its answers degenerate
where f16's do not, and it saves little (230 MiB against q8_0's 278 MiB): use q8_0.
q4_K_M needs llama.cpp's quantizer: `llama-quantize model-f16.gguf out.gguf Q4_K_M` on an
f16 export; check its answers with `aldlab eval` through `aldlab serve --llm-url` first.
"""
