"""`LlamaCppGenerator`: the embedded model and its fine-tunes through llama.cpp on the CPU.

Same interface as `llm.hf_generate.HFGenerator` (`llm.generator.Generator`: `adapter=` picks
'base' or a fine-tune), so the assistant, the server and eval can swap it in. It needs the
optional package `llama-cpp-python` (built from source: see the README's numbers).

- 'base' runs the embedded model's own Q4_K_M GGUF: exactly the weights the transformers
  path dequantises, so both engines start from the same model.
- A LoRA adapter is merged and written as GGUF once (`gguf_export.export_gguf`, cached under
  ALDLAB_HOME/gguf by the adapter's hash); llama.cpp then runs the merged model. Runtime LoRA
  is not used: each request would re-apply it, and a merged 270M model is ~290 MB in Q8_0.
- The prompt is rendered and tokenised by the HF tokenizer with the chat template the
  adapter was trained with (`llm.chat_template.render_prompt_ids`, the tokenisation the
  trainer uses), and decoding stops at `<end_of_turn>`.
- llama.cpp keeps the KV cache of the previous prompt; a request that shares its prefix
  (the system prompt and RAG instruction) only evaluates the new suffix.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
from collections.abc import Generator
from pathlib import Path
from typing import Any

from aldlab.errors import UserError
from aldlab.llm.adapters import check_adapter_dir
from aldlab.llm.chat_template import end_of_turn_token_ids, render_prompt_ids
from aldlab.llm.generator import BASE, Reply, StopReason, TrackedStream

ENGINE = "llama.cpp"
DEFAULT_QUANT = "q8_0"
DEFAULT_N_CTX = 4096


_QUIET_LOG: Any = None


def _silence_llama_cpp_log() -> None:
    """Drop llama.cpp's C-side log lines (failures still raise in Python).

    llama-cpp-python's own callback maps an older ggml level enum, so llama.cpp's warnings
    arrive as errors and pass verbose=False: every eval and `ask` printed "n_ctx_per_seq (4096)
    < n_ctx_train (32768)" and the SWA cache note. The callback object must stay referenced.
    """
    global _QUIET_LOG
    if _QUIET_LOG is None:
        import ctypes

        import llama_cpp

        _QUIET_LOG = llama_cpp.llama_log_callback(lambda level, text, user_data: None)
        llama_cpp.llama_log_set(_QUIET_LOG, ctypes.c_void_p(0))


def llama_cpp_available() -> bool:
    """True when the optional `llama_cpp` package (llama-cpp-python) can be imported."""
    return importlib.util.find_spec("llama_cpp") is not None


def is_embedded(model_name: str | None) -> bool:
    """The embedded gemma-3-270m (by alias or by its local fp32 directory)."""
    from aldlab.llm.model import EMBEDDED_ALIASES, default_model_name, embedded_model_dir

    name = model_name or default_model_name()
    if name in EMBEDDED_ALIASES:
        return True
    path = Path(name).expanduser()
    return path.is_dir() and path.resolve() == embedded_model_dir().resolve()


def adapter_gguf(adapter_dir: str | Path, quant: str = DEFAULT_QUANT) -> Path:
    """The merged GGUF of an adapter, exported once and cached by the adapter's hash."""
    from aldlab.files import file_lock, sha256_file
    from aldlab.llm.gguf_export import export_gguf
    from aldlab.settings import aldlab_home

    adapter = check_adapter_dir(adapter_dir, require=["adapter_model.safetensors"])
    weights = adapter / "adapter_model.safetensors"
    target = aldlab_home() / "gguf" / f"{sha256_file(weights)[:16]}-{quant}"
    gguf_path = target / f"model-{quant}.gguf"
    if gguf_path.exists():
        return gguf_path
    with file_lock(target):
        if not gguf_path.exists():
            print(f"llama.cpp용 GGUF로 변환 중 (한 번만) / converting {adapter.name} to GGUF once ...", file=sys.stderr)
            export_gguf(adapter, target, quant)
    return gguf_path


class LlamaCppGenerator:
    """GGUF models through llama-cpp-python; one llama.cpp context per model, loaded lazily.

    `gguf_paths` maps model names to ready GGUF files ('base' included) and skips the
    embedded/adapter resolution (tests and the benchmark use it).
    """

    engine = ENGINE

    def __init__(
        self,
        model_name: str | None = None,
        adapters: dict[str, str] | None = None,
        *,
        temperature: float = 0.0,
        quant: str = DEFAULT_QUANT,
        n_ctx: int = DEFAULT_N_CTX,
        n_threads: int | None = None,
        gguf_paths: dict[str, str | Path] | None = None,
        tokenizer: Any = None,
    ) -> None:
        if not llama_cpp_available():
            raise UserError(
                "llama-cpp-python이 설치되지 않았습니다.",
                "llama-cpp-python is not installed.",
                hint="pip install llama-cpp-python  (소스 빌드 / builds from source)",
            )
        self.model_name = model_name
        self.adapter_paths = {name: str(path) for name, path in (adapters or {}).items()}
        if BASE in self.adapter_paths:
            raise UserError("어댑터 이름으로 'base'는 쓸 수 없습니다.", "'base' is reserved for the base model.")
        self.temperature = temperature
        self.quant = quant
        self.n_ctx = n_ctx
        self.n_threads = n_threads or os.cpu_count() or 1
        self._gguf_paths = {name: Path(path) for name, path in (gguf_paths or {}).items()}
        self._tokenizer = tokenizer
        self._llamas: dict[str, Any] = {}
        self._stops: set[int] | None = None
        self._load_lock = threading.RLock()
        self._lock = threading.Lock()  # one decode at a time per process (shared KV cache)

    # ---------------------------------------------------------------- models
    def models(self) -> list[str]:
        names = [BASE, *self.adapter_paths]
        return names + [n for n in self._gguf_paths if n not in names]

    def add_adapter(self, name: str, path: str) -> None:
        with self._load_lock:
            self.adapter_paths[name] = str(path)
            self._llamas.pop(name, None)
            self._gguf_paths.pop(name, None)

    @property
    def tokenizer(self) -> Any:
        with self._load_lock:
            if self._tokenizer is None:
                from aldlab.llm.model import load_tokenizer

                self._tokenizer = load_tokenizer(self.model_name)
            return self._tokenizer

    def gguf_path(self, name: str) -> Path:
        """Which GGUF file serves model `name` (exporting an adapter on first use)."""
        if name in self._gguf_paths:
            return self._gguf_paths[name]
        if name in self.adapter_paths:
            return adapter_gguf(self.adapter_paths[name], self.quant)
        if name == BASE and is_embedded(self.model_name):
            from aldlab.llm.gguf_export import embedded_gguf_path

            return embedded_gguf_path()
        if name == BASE:
            raise UserError(
                "llama.cpp 엔진의 기반 모델은 내장 모델만 지원합니다.",
                "The llama.cpp engine runs the embedded base model only.",
                hint="--engine transformers 를 쓰세요 / use the transformers engine for other bases",
            )
        raise UserError(
            f"알 수 없는 모델/어댑터: {name}", f"Unknown model/adapter: {name}",
            hint=f"사용 가능 / available: {', '.join(self.models())}",
        )

    def _llama(self, adapter: str | None) -> Any:
        name = BASE if adapter in (None, "") else str(adapter)
        with self._load_lock:
            if name not in self._llamas:
                from llama_cpp import Llama

                _silence_llama_cpp_log()

                # One prompt-processing batch for a whole RAG prompt (700-800 tokens): time to first
                # token 1.0-1.15 s here vs 1.0-1.25 s with two batches of 512.
                self._llamas[name] = Llama(
                    model_path=str(self.gguf_path(name)), n_ctx=self.n_ctx, n_batch=1024,
                    n_threads=self.n_threads, n_threads_batch=self.n_threads, verbose=False,
                )
            return self._llamas[name]

    def load(self, adapter: str | None = None) -> LlamaCppGenerator:
        """Load the tokenizer and one model now (otherwise on first request)."""
        _ = self.tokenizer
        self._llama(adapter)
        return self

    # ---------------------------------------------------------------- generation
    def _prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        # The same prompt ids as in training and HFGenerator.
        return render_prompt_ids(self.tokenizer, messages)

    def _stop_ids(self) -> set[int]:
        # Found by rendering the chat template (~10 ms): once, not in every request's time to first token.
        if self._stops is None:
            self._stops = set(end_of_turn_token_ids(self.tokenizer))
        return self._stops

    def _token_ids(
        self, messages: list[dict[str, str]], max_new_tokens: int, adapter: str | None
    ) -> Generator[int, None, StopReason]:
        """Greedy (or sampled) new token ids, stopping at the end-of-turn token; returns
        "length" when the budget (max_new_tokens, or what is left of the context) cut it."""
        llm = self._llama(adapter)
        prompt = self._prompt_ids(messages)
        budget = min(int(max_new_tokens), self.n_ctx - len(prompt))
        if budget <= 0:
            raise UserError(
                f"프롬프트가 너무 깁니다 ({len(prompt)} 토큰, 한도 {self.n_ctx}).",
                f"Prompt too long ({len(prompt)} tokens, context {self.n_ctx}).",
                hint="검색 문단 수를 줄이세요 / retrieve fewer passages",
            )
        stops = self._stop_ids()
        sampling = {"temp": self.temperature} if self.temperature > 0 else {"temp": 0.0, "top_k": 1}
        produced = 0
        for token in llm.generate(prompt, repeat_penalty=1.0, **sampling):
            if int(token) in stops:
                return "stop"
            yield int(token)
            produced += 1
            if produced >= budget:
                return "length"
        return "stop"  # the engine ended the reply itself

    def generate(
        self, messages: list[dict[str, str]], *, max_new_tokens: int, adapter: str | None = None
    ) -> str:
        """The assistant's reply (special tokens stripped), decoded like HFGenerator."""
        return self.reply(messages, max_new_tokens=max_new_tokens, adapter=adapter).text

    def reply(
        self, messages: list[dict[str, str]], *, max_new_tokens: int, adapter: str | None = None
    ) -> Reply:
        """The reply and whether it ended at its end-of-turn token or at the budget."""
        with self._lock:
            tokens = TrackedStream(self._token_ids(messages, max_new_tokens, adapter))
            ids = list(tokens)
        return Reply(self.tokenizer.decode(ids, skip_special_tokens=True).strip(), tokens.stop_reason)

    def stream(
        self, messages: list[dict[str, str]], *, max_new_tokens: int, adapter: str | None = None
    ) -> Generator[str, None, StopReason]:
        """Yield text pieces as tokens arrive (a piece never ends inside a UTF-8 character);
        return why generation ended."""
        with self._lock:
            ids: list[int] = []
            sent = ""
            tokens = TrackedStream(self._token_ids(messages, max_new_tokens, adapter))
            for token in tokens:
                ids.append(token)
                text = self.tokenizer.decode(ids, skip_special_tokens=True)
                if text.endswith("\ufffd"):  # half a Korean syllable: wait for the next byte token
                    continue
                if len(text) > len(sent):
                    yield text[len(sent):]
                    sent = text
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            if len(text) > len(sent):
                yield text[len(sent):]
            return tokens.stop_reason


def resolve_engine(engine: str, model_name: str | None) -> str:
    """'auto' | 'transformers' | 'llama.cpp' -> the engine that will run.

    'auto' picks llama.cpp when llama-cpp-python is installed, there is no CUDA GPU and the
    base is the embedded model (the only base we ship as GGUF); 'transformers' and
    'llama.cpp' force one. `llm.generator.make_generator` builds the generator.
    """
    name = engine.lower().replace("_", ".").replace("llamacpp", "llama.cpp")
    if name not in ("auto", "transformers", ENGINE):
        raise UserError(
            f"알 수 없는 엔진: {engine}", f"Unknown engine: {engine}",
            hint="auto, transformers, llama.cpp 중 하나 / one of auto, transformers, llama.cpp",
        )
    if name != "auto":
        return name
    if not llama_cpp_available() or not is_embedded(model_name) or _has_cuda():
        return "transformers"
    return ENGINE


def speed_hint(engine: str, model_name: str | None) -> str | None:
    """One line for people serving the embedded model on transformers only because the optional
    llama.cpp engine is not installed (measured 5-7x faster answers here; README "llama.cpp")."""
    if engine.lower() != "auto" or llama_cpp_available() or not is_embedded(model_name) or _has_cuda():
        return None
    return (
        "팁 / tip: pip install -e \".[cpu]\" — llama.cpp 엔진으로 답변이 5-7배 빠릅니다(C 컴파일러 필요, 약 2-5분 빌드) / "
        "llama.cpp answers 5-7x faster (needs a C compiler; a 2-5 minute build)"
    )


def _has_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return False
